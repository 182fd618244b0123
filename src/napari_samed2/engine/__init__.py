"""Inference without Qt: frame sources, feature cache, selective memory, propagation sessions."""

from .bank_files import load_bank, read_released_bank, save_bank
from .errors import (
    BankError,
    BankFileNotFoundError,
    EngineError,
    FrameDataError,
    NoPromptError,
    PromptError,
    PropagationError,
    SessionBusyError,
    UnsafeBankError,
)
from .features import FeatureCache, FrameEncoder, FrameFeatures
from .frames import ConstantFrameWarning, FrameSource, ModelInput, zoom_region
from .memory import BankEntry, LongTermBank, passes_gate, pooled_key
from .options import LIVE_OPTIONS, MEMORY_MODES, MemoryMode, SessionOptions
from .results import DIRECTIONS, FrameResult, frame_order, frames_total
from .session import PropagationSession
from .settings import MemorySettings, SessionSettings

__all__ = [
    "DIRECTIONS",
    "LIVE_OPTIONS",
    "MEMORY_MODES",
    "BankEntry",
    "BankError",
    "BankFileNotFoundError",
    "ConstantFrameWarning",
    "EngineError",
    "FeatureCache",
    "FrameDataError",
    "FrameEncoder",
    "FrameFeatures",
    "FrameResult",
    "FrameSource",
    "LongTermBank",
    "MemoryMode",
    "MemorySettings",
    "ModelInput",
    "NoPromptError",
    "PromptError",
    "PropagationError",
    "PropagationSession",
    "SessionBusyError",
    "SessionOptions",
    "SessionSettings",
    "UnsafeBankError",
    "frame_order",
    "frames_total",
    "load_bank",
    "passes_gate",
    "pooled_key",
    "read_released_bank",
    "save_bank",
    "zoom_region",
]
