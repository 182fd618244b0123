"""Model layer: SAM2 / SAMed-2 networks from config dicts, checkpoints, devices (pure torch).

Names load on first use (`lazy_loader`, as scikit-image does), so ``samed2 --help`` and the
registry do not import torch.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "build": [
            "build_model",
            "count_parameters",
        ],
        "checkpoint": [
            "Checkpoint",
            "LoadReport",
            "fit_state_dict",
            "infer_spec",
            "read_checkpoint",
            "save_checkpoint",
        ],
        "click_seed": [
            "click_seed_logits",
            "with_click_seed",
        ],
        "configs": [
            "SAM2_CONFIG_FILES",
            "sam2_config",
            "small_config",
        ],
        "device": [
            "PRECISION_CHOICES",
            "autocast",
            "available_devices",
            "check_precision",
            "DEFAULT_PRECISION",
            "compute_dtype",
            "requested_precision",
            "resolve_device",
        ],
        "download": [
            "cache_dir",
            "cached_path",
            "fetch_weights",
        ],
        "errors": [
            "CheckpointError",
            "CheckpointMismatchError",
            "CheckpointNotFoundError",
            "DeviceUnavailableError",
            "DownloadError",
            "InvalidDeviceError",
            "ModelConfigError",
            "ModelError",
            "UnknownModelError",
            "UnsafeCheckpointError",
            "UnsupportedPrecisionError",
        ],
        "loader": [
            "LoadedModel",
            "load_model",
        ],
        "registry": [
            "DEFAULT_MODEL",
            "REGISTRY",
            "ModelSpec",
            "Preprocessing",
            "get_spec",
            "nano_config",
        ],
        "temporal_adapter": [
            "TemporalAdapter",
            "adapter_parameters",
            "has_temporal_adapter",
        ],
        "precision": [
            "Calibration",
        ],
        "profile": [
            "ModelProfile",
            "NANO_PROFILE",
            "SAM2_PROFILE",
            "SAMED2_PROFILE",
            "profile_for",
        ],
    },
)
