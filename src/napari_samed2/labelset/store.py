"""The label set on disk: create and open one, append and remove entries (each atomic, under
the writer lock), list them and summarise the set.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import fsync_directory, fsync_file, write_text_atomic
from .entry import Entry, read_reference_frame
from .format import (
    ENTRIES,
    ENTRY_JSON,
    FORMAT,
    IMAGE_FILE,
    LABELS_FILE,
    MANIFEST,
    TMP_PREFIX,
    VERSION,
    ImageReference,
    LabelSetError,
    ObjectRecord,
    check_manifest,
    entry_dirname,
    source_record,
)
from .lock import LOCK_TIMEOUT, WriterLock
from .provenance import file_sha256, utc_now, writer_record
from .tiff import write_tiff
from .validate import check_image, check_labels, check_objects, present_ids


class LabelSet:
    """A directory of labelled frames (see docs/labelsets.md); make one with `create` or
    `open`. Reading needs no lock; every write takes the set's writer lock."""

    def __init__(
        self, path: str | os.PathLike, manifest: dict[str, Any], lock_timeout: float
    ) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self._lock = WriterLock(self.path, lock_timeout)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        name: str | None = None,
        description: str = "",
        *,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> LabelSet:
        """Make an empty label set in ``path`` (created; or an existing empty folder).

        Raises
        ------
        FileExistsError
            ``path`` holds a label set, other files, or is a file.
        """
        path = Path(path)
        if (path / MANIFEST).exists():
            raise FileExistsError(f"a label set already exists at {str(path)!r}")
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"{str(path)!r} is a file: give a folder for the label set")
        if path.is_dir() and any(p.name != ENTRIES for p in path.iterdir()):
            raise FileExistsError(
                f"{str(path)!r} is not empty: give a new or empty folder for the label set"
            )
        (path / ENTRIES).mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created": utc_now(),
            "name": name or path.resolve().name,
            "description": description,
        }
        # the manifest last: a folder without it is not a set, whatever else happened
        write_text_atomic(path / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        return cls(path, manifest, lock_timeout)

    @classmethod
    def open(cls, path: str | os.PathLike, *, lock_timeout: float = LOCK_TIMEOUT) -> LabelSet:
        """Open the label set in ``path``.

        Raises
        ------
        LabelSetError
            No set there, or its labelset.json is not JSON or not this format.
        LabelSetVersionError
            The set was written by a newer format version.
        """
        path = Path(path)
        manifest_path = path / MANIFEST
        if not path.is_dir():
            state = "it is a file" if path.exists() else "no such folder"
            raise LabelSetError(
                f"no label set at {str(path)!r}: {state} (make one with `samed2 labelset create`)"
            )
        if not manifest_path.is_file():
            raise LabelSetError(
                f"{str(path)!r} is not a label set: it has no {MANIFEST} (make one with "
                "`samed2 labelset create`)"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise LabelSetError(f"{str(manifest_path)!r} is not valid JSON ({error})") from None
        check_manifest(manifest, manifest_path)
        return cls(path, manifest, lock_timeout)

    def __repr__(self) -> str:
        return f"LabelSet({str(self.path)!r}, entries={len(self)})"

    @property
    def name(self) -> str:
        return self.manifest.get("name") or self.path.name

    @property
    def version(self) -> int:
        return self.manifest["version"]

    def __len__(self) -> int:
        return len(self._ids_on_disk())

    def ids(self) -> list[int]:
        """Entry ids, ascending."""
        return self._ids_on_disk()

    def entries(self) -> list[Entry]:
        """Every entry, sorted by id (reads each entry.json, not the images).

        Raises
        ------
        LabelSetError
            An entry folder whose entry.json is missing or corrupt (named).
        """
        entries = []
        for entry_id in self._ids_on_disk():
            directory = self._entry_dir(entry_id)
            try:
                entries.append(Entry.read(directory))
            except LabelSetError:
                if directory.exists():
                    raise
                # removed by a writer since we listed the folder: not damage
        return entries

    def entry(self, entry_id: int) -> Entry:
        directory = self._entry_dir(entry_id)
        if not directory.is_dir():
            ids = self._ids_on_disk()
            held = f"ids {ids[0]}..{ids[-1]}" if ids else "no entries"
            raise KeyError(f"label set {str(self.path)!r} has no entry {entry_id} ({held})")
        return Entry.read(directory)

    @contextlib.contextmanager
    def writing(self) -> Iterator[LabelSet]:
        """Hold the writer lock across several writes (each write takes it anyway).

        Raises
        ------
        LabelSetLockedError
            Another process holds it (named: pid, host, user, since).
        """
        with self._lock:
            if self._lock.depth == 1:
                self._sweep_temporaries()
            yield self

    def add(
        self,
        image: np.ndarray | None,
        labels: np.ndarray,
        *,
        complete: bool = True,
        objects: Sequence[ObjectRecord | dict] | None = None,
        source: dict[str, Any] | None = None,
        reference: ImageReference | None = None,
    ) -> Entry:
        """Append one frame and its labels as a new entry, atomically.

        Parameters
        ----------
        image : ndarray, shape (Y, X) or (Y, X, C), or None
            The frame, any integer or float dtype (kept). None with ``reference``: read there.
        labels : ndarray of int, shape (Y, X)
            0 background, ids 1..2**32-1.
        complete : bool
            Every object on the frame is labelled (an object not listed is absent here).
        objects : list of ObjectRecord (or their JSON dicts), optional
            One per id in ``labels``; default: each id with origin ``"imported"``.
        source : dict, optional
            kind (``layer``/``file``/``pairs``), name, path, axis, frame, position.
        reference : ImageReference, optional
            Keep the frame in its source file instead of copying it; ``image``, when given,
            must equal that frame.

        Raises
        ------
        ValueError
            Bad image, labels or records (named). LabelSetLockedError: another writer.
        """
        image_record: dict[str, Any] = {"file": IMAGE_FILE}
        if reference is not None:
            image_record = _reference_record(reference)
            referenced = read_reference_frame(reference)
            if image is not None and not np.array_equal(np.asarray(image), referenced):
                raise ValueError(f"image differs from the frame it references ({reference})")
            image = referenced
        frame = check_image(image)
        stored = check_labels(labels, frame.shape[:2])
        records = check_objects(objects, present_ids(stored))
        if not isinstance(complete, (bool, np.bool_)):
            raise ValueError(f"complete must be True or False, not {complete!r}")
        record = {
            "id": None,
            "image": image_record,
            "labels": LABELS_FILE,
            "shape": list(frame.shape[:2]),
            "dtype": str(frame.dtype),
            "channels": int(frame.shape[2]) if frame.ndim == 3 else None,
            "labels_dtype": str(stored.dtype),
            "complete": bool(complete),
            "objects": [r.to_json() for r in records],
            "source": source_record(source),
            **writer_record(),
        }
        with self.writing():
            record["id"] = max(self._ids_on_disk(), default=0) + 1
            directory = self._write_entry(record, frame if reference is None else None, stored)
        return Entry(directory, record)

    def remove(self, entry_id: int) -> None:
        """Remove one entry, atomically (it is there whole or gone)."""
        with self.writing():
            directory = self._entry_dir(entry_id)
            if not directory.is_dir():
                raise KeyError(f"label set {str(self.path)!r} has no entry {entry_id}")
            doomed = directory.with_name(f"{TMP_PREFIX}removed-{secrets.token_hex(6)}")
            os.rename(directory, doomed)
            fsync_directory(directory.parent)
            shutil.rmtree(doomed, ignore_errors=True)

    def summary(self) -> dict[str, Any]:
        """Counts for `samed2 labelset info` (see `summary.summarise`)."""
        from .summary import summarise

        return summarise(self)

    # -- on disk ------------------------------------------------------------------------------

    def _entry_dir(self, entry_id: int) -> Path:
        return self.path / ENTRIES / entry_dirname(int(entry_id))

    def _ids_on_disk(self) -> list[int]:
        entries = self.path / ENTRIES
        if not entries.is_dir():
            return []
        names = (p.name for p in entries.iterdir())
        return sorted(int(n) for n in names if n.isascii() and n.isdigit())

    def _sweep_temporaries(self) -> None:
        """Remove what a killed writer left (only the lock holder writes temporaries)."""
        entries = self.path / ENTRIES
        if entries.is_dir():
            for leftover in entries.glob(f"{TMP_PREFIX}*"):
                shutil.rmtree(leftover, ignore_errors=True)

    def _write_entry(
        self, record: dict[str, Any], frame: np.ndarray | None, labels: np.ndarray
    ) -> Path:
        """Write the entry in a temporary folder, flush it, and rename it into place: readers
        see no entry or a whole one, whenever the writer dies."""
        entries = self.path / ENTRIES
        entries.mkdir(exist_ok=True)
        tmp = entries / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        tmp.mkdir()
        try:
            if frame is not None:
                write_tiff(tmp / IMAGE_FILE, frame)
            write_tiff(tmp / LABELS_FILE, labels, compress=True)
            (tmp / ENTRY_JSON).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
            fsync_file(tmp / ENTRY_JSON)
            fsync_directory(tmp)
            target = self._entry_dir(record["id"])
            os.rename(tmp, target)  # fails, never merges, if the target exists
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_directory(entries)
        return target


def _reference_record(reference: ImageReference) -> dict[str, Any]:
    path = Path(reference.path)
    if not path.exists():
        raise FileNotFoundError(f"referenced image {str(path)!r} does not exist")
    record = {"ref": str(path.resolve()), "axis": reference.axis, "index": reference.index}
    record["position"] = [int(v) for v in reference.position]
    if path.is_file():  # a .zarr folder has no one checksum; its size check is skipped too
        record.update(sha256=file_sha256(path), size=path.stat().st_size)
    return record
