"""Long-term bank files: our safetensors + JSON format, and the released SAMed-2 pickle.

Reading never runs code from a file: safetensors holds raw tensors only, and the released
``memory_bank_list_640.pkl`` (plain `pickle`, possibly with CUDA tensors) is read with an
unpickler that builds tensors and plain containers and refuses every other global.
"""

from __future__ import annotations

import io
import json
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path
from .errors import BankError, UnsafeBankError
from .memory import BANK_FORMAT, BANK_VERSION, BankEntry, LongTermBank, pooled_key


def save_bank(bank: LongTermBank, path: str | Path) -> None:
    """Write ``bank`` to ``path`` (``.safetensors``) atomically.

    Tensors: ``features`` ``(N, mem_dim, h, w)`` bfloat16, ``keys`` ``(N, K)`` float32,
    ``confidence`` ``(N,)`` float32. Metadata (JSON strings): format, version, name, capacity,
    frozen, revision and per-entry object id, origin and frame.
    """
    entries = bank.entries
    tensors: dict[str, torch.Tensor] = {}
    if entries:
        tensors = {
            "features": torch.stack([e.features.to(torch.bfloat16) for e in entries]).contiguous(),
            "keys": torch.stack([e.key.float() for e in entries]).contiguous(),
            "confidence": torch.tensor([float(e.confidence) for e in entries]),
        }
    metadata = {
        "format": BANK_FORMAT,
        "version": str(BANK_VERSION),
        "name": bank.name,
        "capacity": str(bank.capacity),
        "frozen": json.dumps(bank.frozen),
        "revision": str(bank.revision),
        "entries": json.dumps(
            [{"obj_id": e.obj_id, "origin": e.origin, "frame": e.frame} for e in entries]
        ),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_bank(path: str | Path) -> LongTermBank:
    """Read a bank written by `save_bank`.

    Raises
    ------
    BankError
        Not a bank file, an unknown format version, or inconsistent contents.
    """
    path = Path(path)
    if not path.is_file():
        raise BankError(f"bank file {str(path)!r} does not exist")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise BankError(f"{path}: not a safetensors bank file ({error})") from error
    if metadata.get("format") != BANK_FORMAT:
        raise BankError(
            f"{path}: format {metadata.get('format')!r} is not {BANK_FORMAT!r} (for the released "
            "SAMed-2 pickle use read_released_bank)"
        )
    version = int(metadata.get("version", -1))
    if version > BANK_VERSION or version < 1:
        raise BankError(f"{path}: bank version {version} is not supported (<= {BANK_VERSION})")
    records = json.loads(metadata.get("entries", "[]"))
    bank = LongTermBank(
        capacity=int(metadata.get("capacity", max(1, len(records)))),
        name=metadata.get("name", path.stem),
        frozen=bool(json.loads(metadata.get("frozen", "false"))),
    )
    if records:
        features, keys, confidence = tensors["features"], tensors["keys"], tensors["confidence"]
        if not len(features) == len(keys) == len(confidence) == len(records):
            raise BankError(f"{path}: entry counts disagree between tensors and metadata")
        for i, record in enumerate(records):
            bank.entries.append(
                BankEntry(
                    features=features[i].clone(),
                    key=keys[i].clone(),
                    confidence=float(confidence[i]),
                    obj_id=record.get("obj_id"),
                    origin=str(record.get("origin", "unknown")),
                    frame=int(record.get("frame", -1)),
                )
            )
    bank.revision = int(metadata.get("revision", 0))
    return bank


# -- the released SAMed-2 pickle -------------------------------------------------------------


def _load_storage_bytes(data: bytes):
    # What plain pickle stores for a torch storage: a legacy torch.save stream. Read it with
    # weights_only=True (no code) and map CUDA storages to the CPU.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class _TensorOnlyUnpickler(pickle.Unpickler):
    """Builds tensors, numbers and containers; any other global is refused."""

    ALLOWED: ClassVar[dict[tuple[str, str], str]] = {
        ("torch._utils", "_rebuild_tensor_v2"): "tensor",
        ("torch._utils", "_rebuild_tensor"): "tensor",
        ("torch._utils", "_rebuild_parameter"): "tensor",
        ("torch.storage", "_load_from_bytes"): "storage",
        ("collections", "OrderedDict"): "container",
    }

    def find_class(self, module: str, name: str):
        kind = self.ALLOWED.get((module, name))
        if kind == "storage":
            return _load_storage_bytes
        if kind == "container":
            return OrderedDict
        if kind == "tensor":
            import torch._utils as rebuild

            return getattr(rebuild, name)
        raise UnsafeBankError(
            f"the bank pickle references {module}.{name}; only tensors and plain containers "
            "are accepted (a file that names code is refused, nothing was executed)"
        )

    def persistent_load(self, pid):
        raise UnsafeBankError(f"the bank pickle uses persistent id {pid!r}; refused")


def read_released_bank(
    path: str | Path, key_size: int = 8, capacity: int | None = None, name: str | None = None
) -> LongTermBank:
    """Read SAMed-2's released ``memory_bank_list_640.pkl`` without executing code.

    The file is a list of entries; each entry (a list, tuple or dict) holds the mask memory
    ``(1, 64, 64, 64)``, its positional encoding (same shape; dropped: it is the memory
    encoder's fixed sine encoding), the predicted IoU (a number or one-element tensor) and the
    flattened memory-conditioned image embedding (``256*64*64``). Fields are recognised by
    shape, in that order of appearance. Tensors are mapped to the CPU; keys are pooled to
    ``key_size`` (see `memory.pooled_key`). Entries match every object id.

    Raises
    ------
    UnsafeBankError
        The pickle names anything but tensors and containers.
    BankError
        The layout is not the one described above.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            payload = _TensorOnlyUnpickler(handle).load()
    except UnsafeBankError:
        raise
    except (pickle.UnpicklingError, EOFError, OSError, RuntimeError) as error:
        raise BankError(f"{path}: cannot read the bank pickle ({error})") from error
    if isinstance(payload, dict):
        lists = [v for v in payload.values() if isinstance(v, (list, tuple))]
        payload = lists[0] if len(lists) == 1 else payload
    if not isinstance(payload, (list, tuple)):
        raise BankError(f"{path}: expected a list of entries, got {type(payload).__name__}")
    bank = LongTermBank(capacity=capacity or max(1, len(payload)), name=name or path.stem)
    for index, raw in enumerate(payload):
        values = list(raw.values()) if isinstance(raw, dict) else list(raw)
        maps = [v for v in values if isinstance(v, torch.Tensor) and v.dim() == 4]
        flats = [
            v for v in values if isinstance(v, torch.Tensor) and v.dim() <= 2 and v.numel() > 1
        ]
        scalars = [
            float(v)
            for v in values
            if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1)
        ]
        if not maps or not flats or not scalars:
            raise BankError(
                f"{path}: entry {index} does not hold a mask memory, a key and a confidence "
                f"(types: {[type(v).__name__ for v in values]})"
            )
        features = maps[0][0] if maps[0].shape[0] == 1 else maps[0]
        channels = _embedding_channels(flats[0].numel(), features.shape[-1])
        side = round((flats[0].numel() / channels) ** 0.5)
        key = pooled_key(flats[0].reshape(channels, side, side), key_size)
        bank.entries.append(
            BankEntry(
                features=features.to(torch.bfloat16).clone(),
                key=key,
                confidence=scalars[0],
                obj_id=None,
                origin="released",
                frame=index,
            )
        )
    return bank


def _embedding_channels(numel: int, side: int) -> int:
    # The key is a flattened (C, side, side) embedding where side is the memory map's side.
    if numel % (side * side):
        raise BankError(f"key of {numel} values is not a (C, {side}, {side}) embedding")
    return numel // (side * side)
