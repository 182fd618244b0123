"""Reading, checking and writing checkpoints without ever running code from a file.

Readers: ``torch.load(weights_only=True)`` for ``.pt``/``.pth`` (sam2, SAMed-2, MedSAM2) and
safetensors for our own files. A pickle that asks for anything but tensors is refused.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path
from .errors import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
)
from .registry import REGISTRY, ModelSpec, Preprocessing
from .safe_config import SIZE_LIMITS, check_network_config

UNUSED_FUSION = re.compile(r"\.fancy_fusion\.")
# (trunk embed_dim, number of Hiera blocks) -> size name in the registry
TRUNK_SIZES = {(96, 12): "tiny", (96, 16): "small", (112, 24): "base-plus", (144, 48): "large"}
FORMAT_VERSION = "1"


@dataclass
class Checkpoint:
    """A state dict read from disk, with the metadata our own files carry."""

    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


@dataclass
class LoadReport:
    """What loading a state dict into a network did (raised as an error unless it fits)."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatches: list[str] = field(default_factory=list)
    dropped_unused: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatches)


def load_weights_only(
    path: Path, map_location: str | torch.device = "cpu", what: str = "PyTorch checkpoint"
):
    """``torch.load`` with weights-only unpickling: tensors and plain containers, never code.

    Raises
    ------
    UnsafeCheckpointError
        The pickle references a class or function.
    CheckpointError
        Truncated or corrupt (``what`` names the kind of file in the message).
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"refused to load {str(path)!r}: it contains objects other than tensors, and "
            f"unpickling them could run code ({_first_line(error)}). Only weights-only "
            "checkpoints are accepted"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(
            f"{str(path)!r} is not a readable {what} (truncated or corrupt?): {_first_line(error)}"
        ) from error


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file safely into CPU tensors.

    Accepts ``{"model": state_dict}`` (sam2, SAMed-2's ``latest_epoch_0217.pth``), a bare
    state dict, and our safetensors files (whose metadata holds config and preprocessing).

    Raises
    ------
    UnsafeCheckpointError
        The pickle references code (a class or function other than tensors and containers),
        or a safetensors file's network config is refused (`safe_config`).
    CheckpointNotFoundError
        Not a file (also a `FileNotFoundError`).
    CheckpointError
        Truncated or corrupt, or no state dict inside.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {str(path)!r} does not exist or is not a file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    payload = load_weights_only(path)
    state = payload.get("model", payload) if isinstance(payload, dict) else None
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        keys = list(payload)[:10] if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{str(path)!r} holds no state dict; expected {{'model': state_dict}} or a "
            f"state dict, found {keys}"
        )
    return Checkpoint(dict(state), {}, path)


def _read_safetensors(path: Path) -> Checkpoint:
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{str(path)!r} is not a readable safetensors file: {_first_line(error)}"
        ) from error
    metadata = {}
    for key, value in raw.items():
        try:
            metadata[key] = json.loads(value)
        except json.JSONDecodeError:
            metadata[key] = value
        except RecursionError:
            raise CheckpointError(f"{str(path)!r}: metadata {key!r} nests too deeply") from None
    if "config" in metadata:
        # Early, so that the refusal names the file; build_model checks again.
        check_network_config(metadata["config"], source=repr(str(path)))
    return Checkpoint(state, metadata, path)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def fit_state_dict(net: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> LoadReport:
    """Load ``state_dict`` into ``net`` strictly; raise naming every key that does not fit.

    The released SAMed-2 checkpoint's never-called ``fancy_fusion`` weights are dropped
    (reported in `LoadReport.dropped_unused`) unless ``net`` was built to hold them.
    """
    expected = net.state_dict()
    report = LoadReport()
    state = {}
    for key, value in state_dict.items():
        if key not in expected and UNUSED_FUSION.search(key):
            report.dropped_unused.append(key)
            continue
        state[key] = value
    report.missing = sorted(set(expected) - set(state))
    report.unexpected = sorted(set(state) - set(expected))
    report.shape_mismatches = sorted(
        f"{key}: checkpoint {tuple(state[key].shape)} vs network {tuple(expected[key].shape)}"
        for key in set(state) & set(expected)
        if state[key].shape != expected[key].shape
    )
    if not report.fits:
        parts = []
        if report.missing:
            parts.append(f"missing keys ({len(report.missing)}): {', '.join(report.missing)}")
        if report.unexpected:
            parts.append(
                f"unexpected keys ({len(report.unexpected)}): {', '.join(report.unexpected)}"
            )
        if report.shape_mismatches:
            parts.append(f"shape mismatches: {'; '.join(report.shape_mismatches)}")
        raise CheckpointMismatchError("checkpoint does not fit the network: " + " | ".join(parts))
    net.load_state_dict(state, strict=True)
    return report


def infer_spec(state_dict: dict[str, torch.Tensor], name: str = "checkpoint") -> ModelSpec:
    """Guess the registry entry whose architecture matches a sam2-layout state dict."""
    try:
        embed = state_dict["image_encoder.trunk.patch_embed.proj.weight"].shape[0]
    except KeyError:
        raise CheckpointError(
            f"{name}: no 'image_encoder.trunk.patch_embed.proj.weight'; not a SAM2 checkpoint"
        ) from None
    blocks = {
        int(m.group(1))
        for key in state_dict
        if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", key))
    }
    size = TRUNK_SIZES.get((embed, len(blocks)))
    if size is None:
        raise CheckpointError(
            f"{name}: trunk with embed_dim {embed} and {len(blocks)} blocks matches no known "
            f"SAM2 size {sorted(TRUNK_SIZES.values())}; pass preset= to say which config it uses"
        )
    adapter = any(".adapter." in key for key in state_dict)
    version = "sam2.1" if "no_obj_embed_spatial" in state_dict else "sam2"
    if adapter and version == "sam2" and size == "small":
        return REGISTRY["samed2"]
    base = REGISTRY[f"{version}-{size}"]
    if not adapter:
        return base
    return ModelSpec(
        name=f"{base.name}+adapter",
        description=f"{base.description} with temporal adapters",
        config=base.config,
        temporal_adapter=True,
        preprocessing=REGISTRY["samed2"].preprocessing,
        licence="unknown",
    )


def spec_from_metadata(metadata: dict[str, Any], name: str) -> ModelSpec | None:
    """The architecture recorded in one of our own safetensors files, if any.

    Raises
    ------
    UnsafeCheckpointError
        The recorded network config is refused (`safe_config.check_network_config`).
    CheckpointError
        The recorded preprocessing is missing or malformed.
    """
    if "config" not in metadata:
        return None
    config = metadata["config"]
    check_network_config(config, source=repr(name))
    try:
        preprocessing = Preprocessing.from_dict(metadata["preprocessing"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(
            f"{name!r}: metadata 'preprocessing' is {metadata.get('preprocessing')!r}; expected "
            f"a mapping with image_size, mean, std, mask_threshold ({error!r})"
        ) from error
    limit = SIZE_LIMITS["image_size"]
    if not 0 < preprocessing.image_size <= limit:
        # frames are resized to this size: a file must not make us allocate without bound
        raise UnsafeCheckpointError(
            f"{name!r}: metadata preprocessing.image_size is {preprocessing.image_size}; "
            f"accepted: 1 to {limit}"
        )
    return ModelSpec(
        name=str(metadata.get("name", name)),
        description=str(metadata.get("description", "")),
        config=lambda: json.loads(json.dumps(config)),
        temporal_adapter=bool(metadata.get("temporal_adapter", False)),
        preprocessing=preprocessing,
        licence=str(metadata.get("licence", "unknown")),
    )


def save_checkpoint(
    path: str | Path,
    net: torch.nn.Module,
    *,
    config: dict[str, Any],
    temporal_adapter: bool,
    preprocessing: Preprocessing,
    name: str,
    description: str = "",
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``net`` as a self-describing safetensors file, atomically.

    The metadata records the config, adapter flag, preprocessing and ``extra`` (provenance,
    training log, parent checkpoint), so `load_model` needs nothing else. An existing file is
    never replaced unless ``overwrite=True``: fine-tuning can never clobber a base model.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoints are written as .safetensors, got {str(path)!r}")
    if path.exists() and not overwrite:
        raise CheckpointError(f"{str(path)!r} exists; refusing to overwrite it")
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    metadata = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": description,
        "config": config,
        "temporal_adapter": temporal_adapter,
        "preprocessing": preprocessing.to_dict(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    encoded = {key: json.dumps(value) for key, value in metadata.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=encoded)
    return path
