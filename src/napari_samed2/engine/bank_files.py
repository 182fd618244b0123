"""Long-term bank files: our safetensors + JSON format, and the released SAMed-2 pickle.

Reading never runs code from a file: safetensors holds raw tensors only, and the released
``memory_bank_list_640.pkl`` (plain `pickle`, possibly with CUDA tensors) is read with an
unpickler that builds tensors and plain containers and refuses every other global.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..atomic import atomic_path
from .errors import BankError, BankFileNotFoundError, UnsafeBankError
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

    Every field is checked before anything is allocated: the tensors' declared shapes and
    byte ranges must fit inside the file, so a crafted header cannot make us allocate more
    than the file holds.

    Raises
    ------
    BankFileNotFoundError
        No such file (also a `FileNotFoundError`).
    BankError
        Not a bank file, an unknown format version, or a malformed or inconsistent field;
        the message names the file and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise BankFileNotFoundError(f"bank file {str(path)!r} does not exist")
    declared = _declared_tensors(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            fields = _bank_fields(path, metadata)
            records = fields.pop("entries")
            _check_tensors(path, declared, len(records))
            tensors = {name: handle.get_tensor(name) for name in declared}
    except BankError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise BankError(f"{path}: not a safetensors bank file ({error})") from error
    bank = LongTermBank(capacity=fields["capacity"], name=fields["name"], frozen=fields["frozen"])
    for i, record in enumerate(records):
        confidence = float(tensors["confidence"][i])
        if not math.isfinite(confidence):
            raise BankError(f"{path}: tensor 'confidence' [{i}] is {confidence}; must be finite")
        bank.entries.append(
            BankEntry(
                features=tensors["features"][i].to(torch.bfloat16).clone(),
                key=tensors["keys"][i].float().clone(),
                confidence=confidence,
                obj_id=record["obj_id"],
                origin=record["origin"],
                frame=record["frame"],
            )
        )
    bank.revision = fields["revision"]
    return bank


# name -> number of dimensions of the tensors a bank file holds (entries on the first axis)
BANK_TENSORS = {"features": 4, "keys": 2, "confidence": 1}
FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
HEADER_LIMIT = 100_000_000  # safetensors' own limit on the JSON header


def _declared_tensors(path: Path) -> dict[str, list[int]]:
    """The tensors the header declares, with their shapes, checked against the file size."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise BankError(f"{path}: not a safetensors bank file ({size} bytes)")
        length = int.from_bytes(prefix, "little")
        if length > min(HEADER_LIMIT, size - 8):
            raise BankError(
                f"{path}: not a safetensors bank file (header of {length} bytes declared, the "
                f"file has {size})"
            )
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise BankError(f"{path}: not a safetensors bank file (header: {error})") from None
    if not isinstance(header, dict):
        raise BankError(f"{path}: not a safetensors bank file (header is not a mapping)")
    data_size = size - 8 - length
    declared = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        field = f"{path}: tensor {name!r}"
        if not isinstance(info, dict):
            raise BankError(f"{field} is described by {info!r}; expected a mapping")
        shape, offsets, dtype = info.get("shape"), info.get("data_offsets"), info.get("dtype")
        if dtype not in FLOAT_DTYPES:
            raise BankError(f"{field} has dtype {dtype!r}; accepted: {sorted(FLOAT_DTYPES)}")
        if not _int_list(shape) or any(n < 0 for n in shape):
            raise BankError(f"{field} has shape {shape!r}; expected non-negative integers")
        if not _int_list(offsets) or len(offsets) != 2:
            raise BankError(f"{field} has data_offsets {offsets!r}; expected [begin, end]")
        nbytes = math.prod(shape) * FLOAT_DTYPES[dtype]
        begin, end = offsets
        if not 0 <= begin <= end <= data_size or end - begin != nbytes:
            raise BankError(
                f"{field} declares shape {shape} ({nbytes} bytes) at bytes {offsets}, but the "
                f"file holds {data_size} bytes of data"
            )
        declared[name] = shape
    return declared


def _int_list(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in value
    )


def _bank_fields(path: Path, metadata: dict[str, str]) -> dict:
    """The metadata fields of a bank file, parsed and checked (entries as a list of dicts)."""
    if metadata.get("format") != BANK_FORMAT:
        raise BankError(
            f"{path}: format {metadata.get('format')!r} is not {BANK_FORMAT!r} (for the released "
            "SAMed-2 pickle use read_released_bank)"
        )
    missing = [
        k for k in ("version", "capacity", "frozen", "revision", "entries") if k not in metadata
    ]
    if missing:
        raise BankError(f"{path}: metadata field(s) {missing} missing; written by save_bank?")
    values = {}
    for name in ("version", "capacity", "frozen", "revision", "entries"):
        try:
            values[name] = json.loads(metadata[name])
        except (ValueError, RecursionError):
            raise BankError(
                f"{path}: metadata field {name!r} is {metadata[name][:80]!r}; not JSON"
            ) from None
    version = values["version"]
    if not _is_int(version) or not 1 <= version <= BANK_VERSION:
        raise BankError(f"{path}: bank version {version!r} is not supported (1 to {BANK_VERSION})")
    for name, low in (("capacity", 1), ("revision", 0)):
        if not _is_int(values[name]) or values[name] < low:
            raise BankError(
                f"{path}: metadata field {name!r} is {values[name]!r}; expected an integer >= {low}"
            )
    if not isinstance(values["frozen"], bool):
        raise BankError(
            f"{path}: metadata field 'frozen' is {values['frozen']!r}; expected true/false"
        )
    records = values["entries"]
    if not isinstance(records, list):
        raise BankError(f"{path}: metadata field 'entries' is not a list")
    for i, record in enumerate(records):
        _check_record(path, i, record)
    if len(records) > values["capacity"]:
        raise BankError(
            f"{path}: metadata field 'entries' lists {len(records)} entries, more than its "
            f"capacity {values['capacity']}"
        )
    return {
        "capacity": values["capacity"],
        "frozen": values["frozen"],
        "revision": values["revision"],
        "entries": records,
        "name": str(metadata.get("name", path.stem)),
    }


def _check_record(path: Path, index: int, record) -> None:
    field = f"{path}: metadata field 'entries' [{index}]"
    if not isinstance(record, dict):
        raise BankError(f"{field} is {record!r}; expected {{obj_id, origin, frame}}")
    missing = [k for k in ("obj_id", "origin", "frame") if k not in record]
    if missing:
        raise BankError(f"{field} lacks {missing}")
    if record["obj_id"] is not None and not _is_int(record["obj_id"]):
        raise BankError(f"{field} obj_id is {record['obj_id']!r}; expected an integer or null")
    if not isinstance(record["origin"], str):
        raise BankError(f"{field} origin is {record['origin']!r}; expected a string")
    if not _is_int(record["frame"]):
        raise BankError(f"{field} frame is {record['frame']!r}; expected an integer")


def _check_tensors(path: Path, declared: dict[str, list[int]], count: int) -> None:
    """The tensors hold one row per entry with the layout `save_bank` writes."""
    unknown = sorted(set(declared) - set(BANK_TENSORS))
    if unknown:
        raise BankError(
            f"{path}: tensor(s) {unknown} are not part of a bank {sorted(BANK_TENSORS)}"
        )
    if count == 0 and not declared:
        return
    for name, dims in BANK_TENSORS.items():
        shape = declared.get(name)
        if shape is None:
            raise BankError(f"{path}: tensor {name!r} missing for {count} entries")
        if len(shape) != dims or shape[0] != count:
            raise BankError(
                f"{path}: tensor {name!r} has shape {shape}; expected {dims} dimensions with "
                f"{count} rows (one per entry in 'entries')"
            )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- the released SAMed-2 pickle -------------------------------------------------------------


def _load_storage_bytes(data: bytes):
    # What plain pickle stores for a torch storage: a legacy torch.save stream. Its declared
    # sizes are checked against the bytes it holds (torch allocates them before reading), then
    # it is read with weights_only=True (no code) and CUDA storages are mapped to the CPU.
    _check_storage_sizes(data)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# Element size of each storage class a legacy torch.save stream may name.
STORAGE_ELEMENT_SIZES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
}


class _NoGlobalsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise UnsafeBankError(f"the bank pickle references {module}.{name}; refused")


class _StorageSizeReader(_NoGlobalsUnpickler):
    """Reads what a legacy storage stream declares, allocating nothing."""

    def __init__(self, stream):
        super().__init__(stream)
        self.declared: dict[str, int] = {}

    def find_class(self, module: str, name: str):
        # torch.cuda.* in streams written by old torch versions from GPU tensors
        if module in ("torch", "torch.cuda") and name in STORAGE_ELEMENT_SIZES:
            return name
        return super().find_class(module, name)

    def persistent_load(self, pid):
        kind, numel = (pid[1], pid[4]) if isinstance(pid, tuple) and len(pid) == 6 else (None, None)
        if kind not in STORAGE_ELEMENT_SIZES or not _is_int(numel) or numel < 0:
            raise BankError(f"a tensor storage is described by {pid!r}; not a storage record")
        self.declared[str(pid[2])] = numel * STORAGE_ELEMENT_SIZES[kind]


def _check_storage_sizes(data: bytes) -> None:
    stream = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, system info
        _NoGlobalsUnpickler(stream).load()
    reader = _StorageSizeReader(stream)
    reader.load()
    _NoGlobalsUnpickler(stream).load()  # the storage keys
    needed = sum(reader.declared.values()) + 8 * len(reader.declared)
    held = len(data) - stream.tell()
    if needed > held:
        raise BankError(
            f"a tensor storage declares {needed} bytes of data but the file holds {held}"
        )


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
    if not path.is_file():
        raise BankFileNotFoundError(f"bank file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as handle:
            payload = _TensorOnlyUnpickler(handle).load()
    except BankError as error:
        raise type(error)(f"{path}: {error}") from error
    except Exception as error:
        # A crafted pickle can make the unpickler or torch's rebuild functions raise almost
        # anything (TypeError, IndexError, ...); all of it means "not a bank pickle".
        raise BankError(f"{path}: cannot read the bank pickle ({error!r})") from error
    if isinstance(payload, dict):
        lists = [v for v in payload.values() if isinstance(v, (list, tuple))]
        payload = lists[0] if len(lists) == 1 else payload
    if not isinstance(payload, (list, tuple)):
        raise BankError(f"{path}: expected a list of entries, got {type(payload).__name__}")
    bank = LongTermBank(capacity=capacity or max(1, len(payload)), name=name or path.stem)
    budget = path.stat().st_size  # bytes the entries may take: entries sharing one tensor
    for index, raw in enumerate(payload):
        try:
            entry = _released_entry(path, index, raw, key_size)
        except BankError:
            raise
        except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as error:
            raise BankError(f"{path}: entry {index} is malformed ({error!r})") from error
        budget -= entry.features.numel() * entry.features.element_size()
        if budget < 0:
            raise BankError(
                f"{path}: entry {index} would take the bank past the {path.stat().st_size} bytes "
                "the file holds (entries repeat the same tensors?)"
            )
        bank.entries.append(entry)
    return bank


def _released_entry(path: Path, index: int, raw, key_size: int) -> BankEntry:
    """One entry of the released pickle: mask memory, positional encoding, IoU, key."""
    if not isinstance(raw, (dict, list, tuple)):
        raise BankError(f"{path}: entry {index} is a {type(raw).__name__}; expected a list")
    values = list(raw.values()) if isinstance(raw, dict) else list(raw)
    maps = [v for v in values if isinstance(v, torch.Tensor) and v.dim() == 4]
    flats = [v for v in values if isinstance(v, torch.Tensor) and v.dim() <= 2 and v.numel() > 1]
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
    if maps[0].shape[0] != 1 or min(maps[0].shape) < 1:
        raise BankError(
            f"{path}: entry {index} mask memory has shape {list(maps[0].shape)}; "
            "expected (1, C, h, w)"
        )
    if not math.isfinite(scalars[0]):
        raise BankError(f"{path}: entry {index} confidence is {scalars[0]}; must be finite")
    features = maps[0][0]
    try:
        channels = _embedding_channels(flats[0].numel(), features.shape[-1])
    except BankError as error:
        raise BankError(f"{path}: entry {index} {error}") from None
    side = round((flats[0].numel() / channels) ** 0.5)
    key = pooled_key(flats[0].reshape(channels, side, side), key_size)
    return BankEntry(
        features=features.to(torch.bfloat16).clone(),
        key=key,
        confidence=scalars[0],
        obj_id=None,
        origin="released",
        frame=index,
    )


def _embedding_channels(numel: int, side: int) -> int:
    # The key is a flattened (C, side, side) embedding where side is the memory map's side.
    if numel % (side * side):
        raise BankError(f"key of {numel} values is not a (C, {side}, {side}) embedding")
    return numel // (side * side)
