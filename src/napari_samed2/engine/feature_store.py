"""A folder of safetensors files, one per cache entry: checked on every read, written
atomically, bounded in bytes with least-recently-used eviction (file times are the index).

Never a pickle: an entry is tensors and text metadata, parsed by safetensors, so reading a
file cannot run code. An entry that is truncated, foreign, of another format version, carries
another key than its name, or whose tensors are not the expected names, dtypes and shapes is
logged, deleted and reported as missing: the caller recomputes it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from ..atomic import write_bytes_atomic

logger = logging.getLogger(__name__)

FORMAT = "napari-samed2-features"
FORMAT_VERSION = "1"
SUFFIX = ".safetensors"
STALE_TEMP_SECONDS = 3600  # a writer's temporary file older than this was left by a crash
PENDING_WRITES = 4  # background writes queued at most (each holds its tensors in memory)
_KEY_CHARS = set("0123456789abcdef")

Expected = Mapping[str, tuple[torch.dtype, tuple[int, ...]]]


class StoreError(ValueError):
    """A cache folder or bound that cannot be used."""


@dataclass
class StoreCounts:
    """What a store did since it was opened (reads that found an entry or not, entries
    rejected as corrupt or stale, entries and bytes written, background writes that failed,
    entries evicted)."""

    hits: int = 0
    misses: int = 0
    rejected: int = 0
    written: int = 0
    bytes_written: int = 0
    failed: int = 0
    evicted: int = 0


class FeatureStore:
    """Entries ``<key>.safetensors`` in ``directory``, at most ``max_bytes`` in all.

    Parameters
    ----------
    directory : path
        The folder (created on the first write).
    max_bytes : int
        Bound of the folder's entries in bytes; after each write the least recently used
        entries (oldest file modification time: reads touch it) are deleted until the rest
        fit. Entries written by other processes count too.

    Notes
    -----
    Several sessions and processes may share a folder: writes are atomic (a temporary file
    renamed over the entry), so a reader sees a whole entry or none, and an entry deleted
    under a reader is a miss.
    """

    def __init__(self, directory: str | os.PathLike, max_bytes: int):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise StoreError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        directory = Path(directory).expanduser()
        if directory.exists() and not directory.is_dir():
            raise StoreError(f"feature cache folder {str(directory)!r} is a file, not a folder")
        self.directory = directory
        self.max_bytes = max_bytes
        self.counts = StoreCounts()
        self._lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._slots = threading.BoundedSemaphore(PENDING_WRITES)

    def path(self, key: str) -> Path:
        _check_key(key)
        return self.directory / f"{key}{SUFFIX}"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    # -- reading ---------------------------------------------------------------------------

    def read(
        self, key: str, expected: Expected | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
        """The entry ``key``'s tensors (on the CPU) and metadata, or None.

        None when there is no such entry, and when the file is not a sound entry for
        ``key`` (then it is logged as a warning and deleted): larger than the bound (no entry
        is written so), unreadable or truncated, not this format or version, metadata naming
        another key, or tensors other than ``expected`` (name to dtype and shape; None: any).
        """
        path = self.path(key)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:  # not read into memory
                self._count(misses=1)
                return self._reject(path, f"{size} bytes, more than the bound {self.max_bytes}")
            data = path.read_bytes()
        except FileNotFoundError:
            self._count(misses=1)
            return None
        except OSError as error:
            self._count(misses=1)
            return self._reject(path, f"unreadable ({error})")
        try:
            metadata = _metadata(data)
            tensors = safetensors.torch.load(data)
        except (ValueError, TypeError, safetensors.SafetensorError) as error:
            self._count(misses=1)
            return self._reject(path, f"not a readable safetensors file ({error})")
        problem = _problem(key, metadata, tensors, expected)
        if problem:
            self._count(misses=1)
            return self._reject(path, problem)
        _touch(path)
        self._count(hits=1)
        return tensors, metadata

    def touch(self, key: str) -> None:
        """Record a use of entry ``key`` without reading it (none: nothing happens)."""
        _touch(self.path(key))

    def discard(self, key: str, why: str) -> None:
        """Delete entry ``key``, logging ``why`` as a warning (a reader found it unsound)."""
        self._reject(self.path(key), why)

    def _reject(self, path: Path, why: str) -> None:
        logger.warning(
            "feature cache entry %s is %s: deleted, the features are recomputed", path, why
        )
        try:
            path.unlink(missing_ok=True)
        except OSError as error:  # e.g. a folder in its place: still never used
            logger.warning("could not delete %s: %s", path, error)
        self._count(rejected=1)
        return None

    # -- writing ---------------------------------------------------------------------------

    def write(
        self,
        key: str,
        tensors: Mapping[str, torch.Tensor],
        metadata: Mapping[str, str],
        keep: Collection[str] = (),
    ) -> None:
        """Write entry ``key`` now (atomically), then evict down to ``max_bytes`` (sparing the
        entries ``keep`` names, which the writer still needs).

        ``metadata`` gets the format, its version and ``key``; an entry larger than the whole
        bound is not written.
        """
        path = self.path(key)
        header = {**metadata, "format": FORMAT, "version": FORMAT_VERSION, "key": key}
        data = safetensors.torch.save({k: t.contiguous() for k, t in tensors.items()}, header)
        if len(data) > self.max_bytes:
            logger.info("feature cache entry of %d bytes exceeds the bound %d: not written",
                        len(data), self.max_bytes)  # fmt: skip
            return
        write_bytes_atomic(path, data)
        _touch(path)
        self._count(written=1, bytes_written=len(data))
        self.evict(keep)

    def write_later(
        self,
        key: str,
        tensors: Mapping[str, torch.Tensor],
        metadata: Mapping[str, str],
        keep: Collection[str] = (),
    ) -> None:
        """`write` in a background thread (at most `PENDING_WRITES` queued: a caller faster
        than the disk waits here). A failed write is logged, never raised: it is only a cache."""
        self._slots.acquire()
        with self._lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="samed2-feature-writer")
            self._pending = [f for f in self._pending if not f.done()]
            work = self._writer.submit(self._write_quietly, key, tensors, metadata, keep)
            self._pending.append(work)

    def _write_quietly(self, key, tensors, metadata, keep) -> None:
        try:
            self.write(key, tensors, metadata, keep)
        except (OSError, ValueError, RuntimeError) as error:
            # once per store: a full disk or a read-only folder fails every write alike
            level = logging.DEBUG if self.counts.failed else logging.WARNING
            self._count(failed=1)
            logger.log(level, "feature cache: could not write %s: %s", self.path(key), error)
        finally:
            self._slots.release()

    def flush(self) -> None:
        """Wait for the background writes queued so far."""
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Finish the queued writes and stop the writer thread (a later write starts one)."""
        self.flush()
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)

    # -- size ------------------------------------------------------------------------------

    def entries(self) -> list[tuple[Path, int, int]]:
        """``(path, bytes, last use in ns)`` of every entry, least recently used first."""
        found = []
        try:
            listing = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        for item in listing:
            if not item.name.endswith(SUFFIX) or item.name.startswith("."):
                continue
            try:
                info = item.stat()
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            found.append((Path(item.path), info.st_size, info.st_mtime_ns))
        found.sort(key=lambda entry: (entry[2], entry[0].name))
        return found

    @property
    def nbytes(self) -> int:
        """Bytes of all entries in the folder now."""
        return sum(size for _, size, _ in self.entries())

    def evict(self, keep: Collection[str] = ()) -> int:
        """Delete least recently used entries (but those ``keep`` names) until the rest fit
        ``max_bytes``; also remove temporary files that crashed writers left (older than an
        hour). Returns how many entries were deleted."""
        self._remove_stale_temporaries()
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        spared = {self.path(key) for key in keep}
        deleted = 0
        for path, size, _ in entries:
            if total <= self.max_bytes:
                break
            if path in spared:
                continue
            path.unlink(missing_ok=True)
            total -= size
            deleted += 1
        if deleted:
            logger.debug("feature cache %s: evicted %d entries", self.directory, deleted)
            self._count(evicted=deleted)
        return deleted

    def _remove_stale_temporaries(self) -> None:
        limit = time.time() - STALE_TEMP_SECONDS
        try:
            listing = list(os.scandir(self.directory))
        except FileNotFoundError:
            return
        for item in listing:
            if item.name.startswith(".") and item.name.endswith(".tmp"):
                try:
                    if item.stat().st_mtime < limit:
                        os.unlink(item.path)
                except FileNotFoundError:
                    continue

    def _count(self, **changes: int) -> None:
        with self._lock:
            for name, change in changes.items():
                setattr(self.counts, name, getattr(self.counts, name) + change)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or len(key) != 64 or not set(key) <= _KEY_CHARS:
        raise StoreError(f"a cache key is 64 lowercase hexadecimal digits, got {key!r}")


def _touch(path: Path) -> None:
    """Record a use: the file's modification time is its place in the LRU order (set from the
    clock in ns: file systems stamp writes with a coarser clock)."""
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now))
    except FileNotFoundError:
        pass


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's header (safetensors.torch.load drops it)."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes, shorter than the 8-byte header length")
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8:
        raise ValueError(f"header of {length} bytes in a file of {len(data)}")
    header = json.loads(data[8 : 8 + length])
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError("its metadata is not a mapping of text to text")
    return metadata


def _problem(
    key: str, metadata: dict[str, str], tensors: dict[str, torch.Tensor], expected
) -> str | None:
    """Why an entry must not be used (None: it is sound)."""
    if metadata.get("format") != FORMAT:
        return f"not a feature cache entry (format {metadata.get('format')!r}, expected {FORMAT!r})"
    if metadata.get("version") != FORMAT_VERSION:
        return f"of format version {metadata.get('version')!r}, expected {FORMAT_VERSION!r}"
    if metadata.get("key") != key:
        return f"stale: its header's key {metadata.get('key')!r} is not its name's {key!r}"
    if expected is None:
        return None
    if set(tensors) != set(expected):
        return f"holding tensors {sorted(tensors)}, expected {sorted(expected)}"
    for name, (dtype, shape) in expected.items():
        tensor = tensors[name]
        if tensor.dtype != dtype or tuple(tensor.shape) != tuple(shape):
            return (
                f"holding {name} as {tensor.dtype} {tuple(tensor.shape)}, expected {dtype} "
                f"{tuple(shape)}"
            )
    return None
