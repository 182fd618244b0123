"""Model layer: SAM2 / SAMed-2 networks from config dicts, checkpoints, devices (pure torch)."""

from .build import build_model, count_parameters
from .checkpoint import (
    Checkpoint,
    LoadReport,
    fit_state_dict,
    infer_spec,
    read_checkpoint,
    save_checkpoint,
)
from .click_seed import click_seed_logits, with_click_seed
from .configs import SAM2_CONFIG_FILES, sam2_config, small_config
from .device import (
    PRECISION_CHOICES,
    autocast,
    available_devices,
    check_precision,
    compute_dtype,
    resolve_device,
)
from .download import cache_dir, cached_path, fetch_weights
from .errors import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    DeviceUnavailableError,
    DownloadError,
    InvalidDeviceError,
    ModelConfigError,
    ModelError,
    UnknownModelError,
    UnsafeCheckpointError,
    UnsupportedPrecisionError,
)
from .loader import LoadedModel, load_model
from .registry import DEFAULT_MODEL, REGISTRY, ModelSpec, Preprocessing, get_spec, nano_config
from .temporal_adapter import TemporalAdapter, adapter_parameters, has_temporal_adapter

__all__ = [
    "DEFAULT_MODEL",
    "PRECISION_CHOICES",
    "REGISTRY",
    "SAM2_CONFIG_FILES",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "DeviceUnavailableError",
    "DownloadError",
    "InvalidDeviceError",
    "LoadReport",
    "LoadedModel",
    "ModelConfigError",
    "ModelError",
    "ModelSpec",
    "Preprocessing",
    "TemporalAdapter",
    "UnknownModelError",
    "UnsafeCheckpointError",
    "UnsupportedPrecisionError",
    "adapter_parameters",
    "autocast",
    "available_devices",
    "build_model",
    "cache_dir",
    "cached_path",
    "check_precision",
    "click_seed_logits",
    "compute_dtype",
    "count_parameters",
    "fetch_weights",
    "fit_state_dict",
    "get_spec",
    "has_temporal_adapter",
    "infer_spec",
    "load_model",
    "nano_config",
    "read_checkpoint",
    "resolve_device",
    "sam2_config",
    "save_checkpoint",
    "small_config",
    "with_click_seed",
]
