"""`load_model`: a registry name or a checkpoint file in, a ready network out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from sam2.modeling.sam2_base import SAM2Base

from .build import build_model
from .checkpoint import LoadReport, fit_state_dict, infer_spec, read_checkpoint, spec_from_metadata
from .device import compute_dtype, resolve_device
from .download import fetch_weights
from .errors import CheckpointError, UnknownModelError
from .registry import REGISTRY, ModelSpec, Preprocessing, get_spec


@dataclass
class LoadedModel:
    """A network with everything needed to feed it: preprocessing, device and dtype."""

    name: str
    net: SAM2Base
    preprocessing: Preprocessing
    device: torch.device
    dtype: torch.dtype
    config: dict[str, Any]
    temporal_adapter: bool
    source: Path | None = None
    report: LoadReport = field(default_factory=LoadReport)

    @property
    def image_size(self) -> int:
        return int(self.net.image_size)


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
        sam2 / SAMed-2 / MedSAM2 ``.pt``/``.pth`` files or our ``.safetensors`` files.
    device : str, optional
        ``None``/``"auto"`` (cuda, then mps, then cpu) or a device name; an unavailable
        device is an error.
    preset : str, optional
        Registry name whose architecture a local file uses, when it cannot be inferred
        (e.g. ``"medsam2"`` for a 512-px SAM2.1-T file).
    precision : {None, "fp32", "bf16"}
        Compute dtype; default bf16 on CUDA, fp32 elsewhere.

    Raises
    ------
    UnknownModelError
        Unknown name that is not a file either (also a `KeyError` and a `ValueError`).
    CheckpointError
        Unreadable, unsafe or non-fitting checkpoint (every bad key is named).
    DownloadError
        Weights not available and not downloadable.
    """
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
    return LoadedModel(
        name=spec.name,
        net=net,
        preprocessing=spec.preprocessing,
        device=torch_device,
        dtype=compute_dtype(torch_device, precision),
        config=config,
        temporal_adapter=spec.temporal_adapter,
        source=path,
        report=report,
    )


def _locate(
    name_or_path: str | Path, preset: str | None, progressbar: bool
) -> tuple[ModelSpec | None, Path]:
    text = str(name_or_path)
    if text in REGISTRY and not Path(text).is_file():
        spec = REGISTRY[text]
        return spec, fetch_weights(spec, progressbar=progressbar)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise UnknownModelError(
            f"{text!r} is neither a known model ({', '.join(sorted(REGISTRY))}) nor an "
            "existing checkpoint file"
        )
    if preset is not None:
        return get_spec(preset), path
    by_filename = [s for s in REGISTRY.values() if s.filename == path.name and not s.bundled]
    return (by_filename[0] if by_filename else None), path
