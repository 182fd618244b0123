"""Inference without Qt: frame sources, feature cache, selective memory, propagation sessions.

Names load on first use (`lazy_loader`), so the options and the command line's parser do not
import torch.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "bank_files": ["load_bank", "read_released_bank", "save_bank"],
        "errors": [
            "BankError",
            "BankFileNotFoundError",
            "EngineError",
            "FrameDataError",
            "NoPromptError",
            "PromptError",
            "PropagationError",
            "SessionBusyError",
            "UnsafeBankError",
        ],
        "disk_features": ["DiskFeatures", "default_directory"],
        "feature_store": ["FeatureStore"],
        "features": ["FeatureCache", "FrameEncoder", "FrameFeatures"],
        "frames": ["ConstantFrameWarning", "FrameSource", "ModelInput", "zoom_region"],
        "memory": ["BankEntry", "LongTermBank", "passes_gate", "pooled_key"],
        "options": ["LIVE_OPTIONS", "MEMORY_MODES", "MemoryMode", "SessionOptions"],
        "precompute": ["PrecomputeReport", "precompute_features"],
        "results": ["DIRECTIONS", "FrameResult", "frame_order", "frames_total"],
        "session": ["PropagationSession"],
        "settings": ["MemorySettings", "SessionSettings"],
    },
)
