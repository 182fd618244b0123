"""The on-disk feature store: atomic safetensors entries, checked on every read, LRU-bounded.

Every bad entry is a crafted file on disk; every one must be reported missing (so the caller
recomputes), logged and deleted, never used.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import safetensors.torch
import torch

from napari_samed2.engine.feature_store import FeatureStore, StoreError

KEY_A, KEY_B, KEY_C = ("a" * 64, "b" * 64, "c" * 64)


def _tensors(value: float = 1.0, n: int = 1000) -> dict[str, torch.Tensor]:
    return {"0.0": torch.full((1, 4, 5, n // 20), value), "0.1": torch.arange(10.0)[None]}


def _expected(tensors):
    return {name: (t.dtype, tuple(t.shape)) for name, t in tensors.items()}


def test_an_entry_reads_back_exactly_with_its_metadata(tmp_path):
    store = FeatureStore(tmp_path, 10**6)
    tensors = _tensors(2.5)
    store.write(KEY_A, tensors, {"entry": "features"})
    found = store.read(KEY_A, _expected(tensors))
    assert found is not None
    read, metadata = found
    assert all(torch.equal(read[name], tensors[name]) for name in tensors)
    assert metadata["key"] == KEY_A and metadata["entry"] == "features"
    assert store.counts.hits == 1 and store.counts.written == 1
    assert store.read(KEY_B) is None and store.counts.misses == 1  # absent: no warning


def _bad_entry_is_rejected(store, key, caplog, expected=None, words=()):
    with caplog.at_level(logging.WARNING, logger="napari_samed2.engine.feature_store"):
        assert store.read(key, expected) is None
    assert not store.path(key).exists()  # deleted, so it is recomputed and rewritten
    message = " ".join(r.getMessage() for r in caplog.records)
    assert str(store.path(key)) in message
    for word in words:
        assert word in message
    assert store.counts.rejected == 1


def test_a_truncated_entry_is_deleted_and_reported_missing(tmp_path, caplog):
    store = FeatureStore(tmp_path, 10**6)
    store.write(KEY_A, _tensors(), {})
    data = store.path(KEY_A).read_bytes()
    store.path(KEY_A).write_bytes(data[: len(data) - 100])
    _bad_entry_is_rejected(store, KEY_A, caplog, words=("not a readable safetensors",))


def test_a_file_larger_than_the_bound_is_rejected_unread(tmp_path, caplog):
    store = FeatureStore(tmp_path, 1000)
    store.path(KEY_A).write_bytes(b"\0" * 1001)
    _bad_entry_is_rejected(store, KEY_A, caplog, words=("1001 bytes, more than the bound",))


def test_bytes_that_are_not_safetensors_are_rejected(tmp_path, caplog):
    store = FeatureStore(tmp_path, 10**6)
    store.path(KEY_A).parent.mkdir(exist_ok=True)
    store.path(KEY_A).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    _bad_entry_is_rejected(store, KEY_A, caplog)


def test_a_foreign_safetensors_file_is_rejected(tmp_path, caplog):
    store = FeatureStore(tmp_path, 10**6)
    safetensors.torch.save_file(_tensors(), store.path(KEY_A), {"format": "pt"})
    _bad_entry_is_rejected(store, KEY_A, caplog, words=("not a feature cache entry",))


def test_an_entry_of_another_format_version_is_rejected(tmp_path, caplog):
    store = FeatureStore(tmp_path, 10**6)
    header = {"format": "napari-samed2-features", "version": "0", "key": KEY_A}
    safetensors.torch.save_file(_tensors(), store.path(KEY_A), header)
    _bad_entry_is_rejected(store, KEY_A, caplog, words=("format version '0'",))


def test_an_entry_whose_header_names_another_key_is_stale(tmp_path, caplog):
    store = FeatureStore(tmp_path, 10**6)
    store.write(KEY_B, _tensors(), {})
    store.path(KEY_B).rename(store.path(KEY_A))  # right format, wrong entry
    _bad_entry_is_rejected(store, KEY_A, caplog, words=("stale", KEY_B))


@pytest.mark.parametrize(
    "change",
    [
        {"0.0": torch.zeros(1, 4, 5, 49)},  # wrong shape
        {"0.0": torch.zeros(1, 4, 5, 50, dtype=torch.bfloat16)},  # wrong dtype
        {"0.2": torch.zeros(3)},  # a tensor too many
    ],
    ids=["shape", "dtype", "names"],
)
def test_an_entry_with_other_tensors_than_expected_is_rejected(tmp_path, caplog, change):
    store = FeatureStore(tmp_path, 10**6)
    expected = _expected(_tensors())
    store.write(KEY_A, {**_tensors(), **change}, {})
    _bad_entry_is_rejected(store, KEY_A, caplog, expected=expected)


def test_a_pickle_in_place_of_an_entry_is_never_unpickled(tmp_path, caplog):
    marker = tmp_path / "unpickled"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    store = FeatureStore(tmp_path / "cache", 10**6)
    store.directory.mkdir()
    store.path(KEY_A).write_bytes(pickle.dumps(Exploit()))
    torch.save({"0.0": torch.zeros(3)}, tmp_path / "cache" / ("c" * 64 + ".safetensors"))
    _bad_entry_is_rejected(store, KEY_A, caplog)
    assert store.read(KEY_C) is None  # a torch.save file too
    assert not marker.exists()


def test_least_recently_used_entries_are_evicted_to_keep_the_bound(tmp_path):
    one = len(safetensors.torch.save(_tensors(), {"x": "y" * 200}))
    store = FeatureStore(tmp_path, int(2.5 * one))
    store.write(KEY_A, _tensors(), {})
    store.write(KEY_B, _tensors(), {})
    assert store.read(KEY_A) is not None  # A is now more recent than B
    store.write(KEY_C, _tensors(), {})
    assert KEY_A in store and KEY_C in store and KEY_B not in store
    assert store.nbytes <= store.max_bytes and store.counts.evicted == 1
    assert [path.name[:1] for path, _, _ in store.entries()] == ["a", "c"]  # LRU first


def test_an_entry_larger_than_the_bound_is_not_written(tmp_path):
    store = FeatureStore(tmp_path, 1000)
    store.write(KEY_A, _tensors(n=2000), {})
    assert KEY_A not in store and store.counts.written == 0


def test_background_writes_are_all_on_disk_after_close(tmp_path):
    store = FeatureStore(tmp_path, 10**7)
    keys = [f"{i:064x}" for i in range(10)]  # more than the queue holds at once
    for i, key in enumerate(keys):
        store.write_later(key, _tensors(float(i)), {})
    store.close()
    assert all(key in store for key in keys)
    assert torch.equal(store.read(keys[7])[0]["0.0"], _tensors(7.0)["0.0"])


def test_failed_background_writes_warn_once_and_raise_nothing(tmp_path, caplog):
    (tmp_path / "taken").write_text("x")  # a file where the folder should be made
    store = FeatureStore(tmp_path / "taken" / "features", 10**6)
    with caplog.at_level(logging.WARNING, logger="napari_samed2.engine.feature_store"):
        for key in (KEY_A, KEY_B, KEY_C):
            store.write_later(key, _tensors(), {})
        store.close()
    assert store.counts.failed == 3 and store.counts.written == 0
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "could not write" in warned[0].getMessage()


def test_bad_keys_folders_and_bounds_are_refused(tmp_path):
    store = FeatureStore(tmp_path, 10)
    for key in ("../" + "a" * 61, "A" * 64, "a" * 63):
        with pytest.raises(StoreError, match="64 lowercase hexadecimal"):
            store.path(key)
    for bound in (0, -1, 1.5, True):
        with pytest.raises(StoreError, match="max_bytes must be a positive integer"):
            FeatureStore(tmp_path, bound)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        FeatureStore(tmp_path / "file", 10)


# -- a writer killed mid-write ------------------------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import pathlib, sys, time
    import torch
    from napari_samed2.engine.feature_store import FeatureStore

    original = pathlib.Path.write_bytes

    def half_then_hang(self, data):
        with open(self, "wb") as handle:  # half the entry reaches the disk, then the process dies
            handle.write(data[: len(data) // 2])
            handle.flush()
        print("half written", flush=True)
        time.sleep(60)

    pathlib.Path.write_bytes = half_then_hang
    store = FeatureStore(sys.argv[1], 10**8)
    store.write(sys.argv[2], {"0.0": torch.ones(1, 8, 64, 64)}, {})
    """
)


def test_a_writer_killed_mid_write_leaves_no_entry_that_is_used(tmp_path, caplog):
    folder = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(folder), KEY_A],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert writer.stdout.readline().strip() == "half written"
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
    assert writer.returncode == -signal.SIGKILL
    leftovers = [p for p in folder.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".tmp")  # the half entry
    assert leftovers[0].stat().st_size > 0

    store = FeatureStore(folder, 10**8)
    with caplog.at_level(logging.WARNING):
        assert store.read(KEY_A) is None  # a miss: nothing to reject
    assert KEY_A not in store and store.counts.rejected == 0 and store.entries() == []
    store.evict()
    assert leftovers[0].exists()  # a live writer's file is young: kept
    old = time.time() - 2 * 3600
    os.utime(leftovers[0], (old, old))
    store.evict()
    assert not leftovers[0].exists()  # a crashed writer's leftover is removed
