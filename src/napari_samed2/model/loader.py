"""`load_model`: a registry name or a checkpoint file in, a ready network out."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from sam2.modeling.sam2_base import SAM2Base

from .build import build_model
from .checkpoint import LoadReport, fit_state_dict, infer_spec, read_checkpoint, spec_from_metadata
from .device import check_precision, compute_dtype, requested_precision, resolve_device
from .download import fetch_weights
from .errors import CheckpointError, CheckpointNotFoundError, UnknownModelError
from .precision import Calibration, choose
from .profile import ModelProfile, profile_for
from .registry import REGISTRY, ModelSpec, Preprocessing, get_spec

logger = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")


@dataclass
class LoadedModel:
    """A network with everything needed to feed it: preprocessing, device and dtype.

    ``calibration`` is what ``precision="auto"`` measured (None for a precision asked by name).
    """

    name: str
    net: SAM2Base
    preprocessing: Preprocessing
    device: torch.device
    dtype: torch.dtype
    config: dict[str, Any]
    temporal_adapter: bool
    source: Path | None = None
    report: LoadReport = field(default_factory=LoadReport)
    calibration: Calibration | None = None

    @property
    def image_size(self) -> int:
        return int(self.net.image_size)

    @property
    def precision(self) -> str:
        """The precision the network runs in: ``"fp32"`` or ``"bf16"`` (autocast)."""
        return "bf16" if self.dtype == torch.bfloat16 else "fp32"

    @property
    def precision_text(self) -> str:
        """The precision and, for ``"auto"``, why: ``"fp32 (auto: bf16 0.2x as fast)"``."""
        if self.calibration is None:
            return self.precision
        return f"{self.precision} ({self.calibration.describe()})"

    @property
    def profile(self) -> ModelProfile:
        """What the model does beyond sam2's predictor and its option defaults (`profile_for`)."""
        return profile_for(self.preprocessing, self.temporal_adapter)


def load_model(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    *,
    preset: str | None = None,
    precision: str | None = None,
    progressbar: bool = True,
) -> LoadedModel:
    """Load a model by registry name or from a checkpoint file.

    Parameters
    ----------
    name_or_path : str or Path
        A registry name (``samed2-nano``, ``sam2.1-tiny``, ``samed2``, ...) or a file:
        sam2 / SAMed-2 / MedSAM2 ``.pt``/``.pth`` files or our ``.safetensors`` files. A
        plain registry name always means the registry model, even where a file of that name
        is in the working directory (a warning names both); a `Path`, or text with a folder
        separator, a leading ``.`` or ``~``, or a checkpoint suffix, always means a file.
    device : str, optional
        ``None``/``"auto"`` (cuda, then mps, then cpu) or a device name; an unavailable
        device is an error, raised before any weights are read or downloaded.
    preset : str, optional
        Registry name whose architecture a local file uses, when it cannot be inferred
        (e.g. ``"medsam2"`` for a 512-px SAM2.1-T file).
    precision : {None, "auto", "fp32", "bf16"}
        Compute dtype. ``"auto"``: bf16 where it is measured faster on this machine (by
        `model.precision.SPEEDUP_NEEDED`) and its masks match fp32's, else fp32; measured on
        first use per device and architecture (seconds), remembered in the cache folder (see
        `model.precision`). ``None``: the device's default (`device.DEFAULT_PRECISION`: bf16
        on CUDA, auto on CPU, fp32 on MPS). ``"fp32"`` is exact. Checked before any weights
        are read or downloaded.

    Raises
    ------
    UnknownModelError
        Unknown name that is not a file either (also a `KeyError` and a `ValueError`).
    CheckpointNotFoundError
        A path (see ``name_or_path``) that is not an existing file.
    UnsupportedPrecisionError, InvalidDeviceError
        A ``precision`` or ``device`` value that is not accepted (both `ValueError`).
    DeviceUnavailableError
        A device this machine does not have.
    CheckpointError
        Unreadable, unsafe or non-fitting checkpoint (every bad key is named).
    DownloadError
        Weights not available and not downloadable.
    """
    # Values first: a typo must not cost a multi-gigabyte download or read.
    check_precision(precision)
    torch_device = resolve_device(device)
    spec, path = _locate(name_or_path, preset, progressbar)
    checkpoint = read_checkpoint(path)
    if preset is None and spec is None:
        spec = spec_from_metadata(checkpoint.metadata, path.stem) or infer_spec(
            checkpoint.state_dict, str(path)
        )
    elif spec.bundled or path.suffix == ".safetensors":
        spec = spec_from_metadata(checkpoint.metadata, spec.name) or spec
    config = spec.config()
    net = build_model(config, temporal_adapter=spec.temporal_adapter)
    try:
        report = fit_state_dict(net, checkpoint.state_dict)
    except CheckpointError as error:
        raise type(error)(f"{path}: {error}") from error
    net = net.to(torch_device).eval()
    calibration = None
    if requested_precision(torch_device, precision) == "auto":
        calibration = choose(net, torch_device, config, spec.preprocessing)
        dtype = compute_dtype(torch_device, calibration.precision)
    else:
        dtype = compute_dtype(torch_device, precision)
    logger.info(
        "loaded model %s from %s on %s (%s%s)",
        spec.name,
        path,
        torch_device,
        str(dtype).removeprefix("torch."),
        f", {calibration.describe()}" if calibration is not None else "",
    )
    return LoadedModel(
        name=spec.name,
        net=net,
        preprocessing=spec.preprocessing,
        device=torch_device,
        dtype=dtype,
        config=config,
        temporal_adapter=spec.temporal_adapter,
        source=path,
        report=report,
        calibration=calibration,
    )


def looks_like_path(name_or_path: str | os.PathLike) -> bool:
    """Whether the user meant a file: a `Path`, or text that only a path would contain.

    A folder separator, a leading ``.`` (``./samed2-nano``) or ``~``, or a checkpoint suffix
    (``.pt``, ``.pth``, ``.safetensors``).
    """
    if not isinstance(name_or_path, str):
        return True
    separators = {"/", os.sep, os.altsep} - {None}
    return (
        any(separator in name_or_path for separator in separators)
        or name_or_path.startswith((".", "~"))
        or name_or_path.lower().endswith(CHECKPOINT_SUFFIXES)
    )


def _locate(
    name_or_path: str | Path, preset: str | None, progressbar: bool
) -> tuple[ModelSpec | None, Path]:
    text = str(name_or_path)
    if not looks_like_path(name_or_path) and text in REGISTRY:
        # A plain registry name means the registry model: a file that happens to have the
        # same name in whatever folder the command runs from must not replace it silently.
        if Path(text).is_file():
            logger.warning(
                "%r is a registry model and also a file in the working directory (%s); "
                "using the registry model. To load the file, pass it as a path: ./%s",
                text,
                Path(text).resolve(),
                text,
            )
        spec = REGISTRY[text]
        return spec, fetch_weights(spec, progressbar=progressbar)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        if looks_like_path(name_or_path):
            raise CheckpointNotFoundError(
                f"checkpoint file {text!r} does not exist (or is not a file); expected an "
                "existing .pt, .pth or .safetensors file, or a registry name "
                f"({', '.join(sorted(REGISTRY))})"
            )
        raise UnknownModelError(
            f"{text!r} is neither a known model ({', '.join(sorted(REGISTRY))}) nor an "
            "existing checkpoint file"
        )
    if preset is not None:
        return get_spec(preset), path
    by_filename = [s for s in REGISTRY.values() if s.filename == path.name and not s.bundled]
    return (by_filename[0] if by_filename else None), path
