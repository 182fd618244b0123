"""Malformed bank files: each kind gets a BankError naming the file and the field.

Never a TypeError/KeyError/JSONDecodeError, and never an allocation larger than the file:
declared sizes are checked against the file before any tensor is read.
"""

import io
import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from napari_samed2.engine import (
    BankError,
    BankFileNotFoundError,
    LongTermBank,
    load_bank,
    read_released_bank,
)
from napari_samed2.engine.memory import BANK_FORMAT, BankEntry


def valid_parts(count=2):
    """Tensors and metadata exactly as save_bank writes them for ``count`` entries."""
    tensors = {
        "features": torch.zeros(count, 4, 2, 2, dtype=torch.bfloat16),
        "keys": torch.ones(count, 8),
        "confidence": torch.full((count,), 0.5),
    }
    metadata = {
        "format": BANK_FORMAT,
        "version": "1",
        "name": "crafted",
        "capacity": "4",
        "frozen": "false",
        "revision": "3",
        "entries": json.dumps(
            [{"obj_id": 1, "origin": "propagation", "frame": i} for i in range(count)]
        ),
    }
    return tensors, metadata


def write_raw(path, header, data=b""):
    """A safetensors file with a hand-written header (sizes the library would not write)."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def metadata_change(**changes):
    def build(path):
        tensors, metadata = valid_parts()
        for key, value in changes.items():
            if value is None:
                del metadata[key]
            else:
                metadata[key] = value
        save_file(tensors, str(path), metadata=metadata)

    return build


def tensor_change(name, value):
    def build(path):
        tensors, metadata = valid_parts()
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
        save_file(tensors, str(path), metadata=metadata)

    return build


def header_change(name, **fields):
    """The valid file's header with one tensor's entry changed, data left as it is."""

    def build(path):
        tensors, metadata = valid_parts()
        save_file(tensors, str(path), metadata=metadata)
        raw = path.read_bytes()
        length = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8 : 8 + length])
        header[name].update(fields)
        write_raw(path, header, raw[8 + length :])

    return build


MALFORMED = {
    "junk bytes": (lambda p: p.write_bytes(b"not a bank"), "header"),
    "header not JSON": (lambda p: p.write_bytes(struct.pack("<Q", 4) + b"{{{{"), "header"),
    "header not a mapping": (lambda p: write_raw(p, [1, 2]), "header"),
    "entries not JSON": (metadata_change(entries="[{"), "'entries'"),
    "entries not a list": (metadata_change(entries='{"a": 1}'), "'entries'"),
    "entry not a mapping": (metadata_change(entries="[1, 2]"), "'entries' [0]"),
    "entry missing key": (
        metadata_change(entries='[{"obj_id": 1, "origin": "x"}, {}]'), "'entries' [0] lacks"),
    "frame wrong type": (
        metadata_change(entries=json.dumps([{"obj_id": 1, "origin": "x", "frame": "3"}] * 2)),
        "frame is '3'"),
    "obj_id wrong type": (
        metadata_change(entries=json.dumps([{"obj_id": [1], "origin": "x", "frame": 0}] * 2)),
        "obj_id is [1]"),
    "origin wrong type": (
        metadata_change(entries=json.dumps([{"obj_id": 1, "origin": 5, "frame": 0}] * 2)),
        "origin is 5"),
    "capacity missing": (metadata_change(capacity=None), "['capacity']"),
    "capacity not a number": (metadata_change(capacity='"big"'), "'capacity' is 'big'"),
    "capacity not JSON": (metadata_change(capacity="big"), "'capacity'"),
    "capacity negative": (metadata_change(capacity="-1"), "'capacity' is -1"),
    "more entries than capacity": (metadata_change(capacity="1"), "capacity 1"),
    "frozen wrong type": (metadata_change(frozen='"yes"'), "'frozen' is 'yes'"),
    "revision negative": (metadata_change(revision="-5"), "'revision' is -5"),
    "version wrong type": (metadata_change(version='"one"'), "version 'one'"),
    "version too new": (metadata_change(version="99"), "version 99"),
    "tensor missing": (tensor_change("keys", None), "tensor 'keys' missing"),
    "tensor extra": (tensor_change("evil", torch.zeros(1)), "['evil']"),
    "too many rows": (tensor_change("features", torch.zeros(3, 4, 2, 2)), "'features' has shape"),
    "wrong dimensions": (tensor_change("keys", torch.ones(2, 8, 1)), "'keys' has shape"),
    "wrong dtype": (tensor_change("confidence", torch.ones(2, dtype=torch.int64)),
                    "'confidence' has dtype 'I64'"),
    "confidence not finite": (tensor_change("confidence", torch.tensor([0.5, float("nan")])),
                              "'confidence' [1]"),
    "declared shape beyond the file": (
        header_change("features", shape=[2, 4, 10**6, 10**6]), "'features' declares shape"),
    "data offsets beyond the file": (
        header_change("keys", data_offsets=[0, 10**12]), "'keys' declares shape"),
    "negative size": (header_change("keys", shape=[-2, 8]), "'keys' has shape [-2, 8]"),
    "shape not integers": (header_change("keys", shape=["2", 8]), "'keys' has shape"),
    "unknown dtype": (header_change("keys", dtype="F4096"), "'keys' has dtype 'F4096'"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_every_malformed_bank_is_a_bank_error_naming_file_and_field(tmp_path, kind):
    build, field = MALFORMED[kind]
    path = tmp_path / "shared.safetensors"
    build(path)
    with pytest.raises(BankError) as raised:
        load_bank(path)
    assert type(raised.value) is BankError
    assert str(path) in str(raised.value)
    assert field in str(raised.value)


def test_the_valid_parts_load(tmp_path):
    tensors, metadata = valid_parts()
    path = tmp_path / "ok.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    bank = load_bank(path)
    assert (len(bank), bank.capacity, bank.revision, bank.frozen) == (2, 4, 3, False)
    assert [e.frame for e in bank.entries] == [0, 1]


def test_a_missing_bank_is_also_file_not_found(tmp_path):
    for read in (load_bank, read_released_bank):
        with pytest.raises(FileNotFoundError) as raised:
            read(tmp_path / "absent.safetensors")
        assert isinstance(raised.value, BankFileNotFoundError)
        assert "absent.safetensors" in str(raised.value)


# -- the released SAMed-2 pickle ------------------------------------------------------------


def released_entry():
    return [torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4), 0.9, torch.randn(16 * 4 * 4)]


class _Storage:
    """Pickles as a legacy torch storage stream that declares ``numel`` floats."""

    def __init__(self, numel):
        self.numel = numel

    def __reduce__(self):
        stream = io.BytesIO()
        for part in (torch.serialization.MAGIC_NUMBER, torch.serialization.PROTOCOL_VERSION,
                     {"protocol_version": 1001, "little_endian": True,
                      "type_sizes": {"short": 2, "int": 4, "long": 4}}):  # fmt: skip
            pickle.dump(part, stream)
        numel = self.numel

        class Declares(pickle.Pickler):
            def persistent_id(self, obj):
                return (
                    ("storage", torch.FloatStorage, "0", "cpu", numel, None) if obj == 0 else None
                )

        Declares(stream).dump(0)
        pickle.dump(["0"], stream)
        stream.write(struct.pack("<q", numel) + b"\0" * 16)
        return (torch.storage._load_from_bytes, (stream.getvalue(),))


def _dump(path, payload):
    with open(path, "wb") as handle:
        pickle.dump(payload, handle)
    return path


RELEASED_MALFORMED = {
    "not a list": (lambda: 3, "expected a list of entries"),
    "entry not a list": (lambda: [released_entry(), 7], "entry 1 is a int"),
    "entry lacks a key": (lambda: [released_entry()[:3]], "entry 0 does not hold"),
    "batched mask memory": (
        lambda: [[torch.randn(2, 8, 4, 4), 0.9, torch.randn(256)]], "entry 0 mask memory"),
    "key of the wrong size": (
        lambda: [[torch.randn(1, 8, 4, 4), 0.9, torch.randn(17)]], "entry 0 key of 17"),
    "confidence not finite": (
        lambda: [[torch.randn(1, 8, 4, 4), float("inf"), torch.randn(256)]], "entry 0 confidence"),
    "entries repeat one tensor": (lambda: [released_entry()] * 200, "past the"),
    "storage larger than the file": (lambda: [_Storage(10**12)], "declares 4000000000008 bytes"),
    "truncated": (None, "cannot read the bank pickle"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(RELEASED_MALFORMED))
def test_every_malformed_released_bank_is_a_bank_error(tmp_path, kind):
    make, field = RELEASED_MALFORMED[kind]
    path = tmp_path / "memory_bank_list_640.pkl"
    if make is None:
        _dump(path, [released_entry()] * 2)
        path.write_bytes(path.read_bytes()[:-200])
    else:
        shared = make()
        _dump(path, shared)
    with pytest.raises(BankError) as raised:
        read_released_bank(path, key_size=2)
    assert str(path) in str(raised.value)
    assert field in str(raised.value)


def test_a_well_formed_released_bank_still_reads(tmp_path):
    path = _dump(tmp_path / "memory_bank_list_640.pkl", [released_entry() for _ in range(3)])
    bank = read_released_bank(path, key_size=2)
    assert len(bank) == 3 and bank.entries[0].features.shape == (8, 4, 4)
    assert isinstance(bank, LongTermBank) and isinstance(bank.entries[0], BankEntry)
