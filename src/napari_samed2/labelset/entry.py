"""One entry of a label set: its entry.json checked field by field, its image (copied or
referenced in the source file) and labels read on demand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .format import ENTRY_JSON, ImageReference, LabelSetError, ObjectRecord
from .provenance import file_sha256
from .tiff import read_tiff


class Entry:
    """One 2-D frame of a label set (rows, cols) or (rows, cols, channels) and its labels.

    Cheap to make: only entry.json is read; `image` and `labels` read the TIFF files.
    """

    def __init__(self, directory: str | os.PathLike, record: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.record = record
        self.objects = [ObjectRecord.from_json(o) for o in record["objects"]]

    @classmethod
    def read(cls, directory: str | os.PathLike) -> Entry:
        """Read and check ``directory/entry.json``.

        Raises
        ------
        LabelSetError
            entry.json missing, not JSON, or a field missing or of the wrong kind.
        """
        path = Path(directory) / ENTRY_JSON
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LabelSetError(
                f"{str(path)!r} is missing: the entry folder is damaged (entries are written "
                "whole, so something removed it); restore the file or remove the folder"
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise LabelSetError(f"{str(path)!r} is not valid JSON ({error})") from None
        try:
            _check_record(record, Path(directory).name)
            return cls(directory, record)
        except (KeyError, TypeError, ValueError) as error:
            raise LabelSetError(f"{str(path)!r}: {error}") from None

    def __repr__(self) -> str:
        return f"Entry(id={self.id}, shape={self.shape}, objects={[o.id for o in self.objects]})"

    @property
    def id(self) -> int:
        return self.record["id"]

    @property
    def complete(self) -> bool:
        """Every object on this frame is labelled: one of its source's objects not listed is
        absent here."""
        return self.record["complete"]

    @property
    def source(self) -> dict[str, Any]:
        return self.record["source"]

    @property
    def frame(self) -> int | None:
        """The frame's index along its source's axis (None for a 2-D source)."""
        return self.record["source"].get("frame")

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns."""
        return tuple(self.record["shape"])

    @property
    def dtype(self) -> np.dtype:
        """The image's dtype, as it was given."""
        return np.dtype(self.record["dtype"])

    @property
    def channels(self) -> int | None:
        return self.record["channels"]

    @property
    def object_ids(self) -> list[int]:
        return [o.id for o in self.objects]

    @property
    def reference(self) -> ImageReference | None:
        """Where the frame lives when it was not copied into the set."""
        image = self.record["image"]
        if "ref" not in image:
            return None
        return ImageReference(
            image["ref"], image.get("axis"), image.get("index"), tuple(image.get("position") or ())
        )

    def image(self) -> np.ndarray:
        """The frame in its original dtype.

        Raises
        ------
        FileNotFoundError
            Its file (image.tif, or the referenced source) is gone.
        LabelSetError
            The file holds something else than entry.json says (shape, dtype, size).
        """
        image = self.record["image"]
        if "file" in image:
            array = read_tiff(self._file(image["file"], "image"))
        else:
            array = self._read_reference()
        expected = (*self.shape, self.channels) if self.channels else self.shape
        if array.shape != expected or array.dtype != self.dtype:
            raise LabelSetError(
                f"entry {self.id}: the image read is {array.shape} {array.dtype}, entry.json "
                f"says {expected} {self.dtype}"
            )
        return array

    def labels(self) -> np.ndarray:
        """The label image (rows, cols), uint8/uint16/uint32, 0 background."""
        array = read_tiff(self._file(self.record["labels"], "labels"))
        if array.shape != self.shape or array.dtype.kind != "u":
            raise LabelSetError(
                f"entry {self.id}: labels read are {array.shape} {array.dtype}, expected "
                f"{self.shape} unsigned integers"
            )
        return array

    def mask(self, obj_id: int) -> np.ndarray:
        """Object ``obj_id``'s pixels (bool, rows × cols)."""
        if obj_id not in self.object_ids:
            raise KeyError(f"entry {self.id} has no object {obj_id}; it has {self.object_ids}")
        return self.labels() == obj_id

    def verify(self) -> None:
        """Check a referenced source still has the sha256 recorded (reads the whole file)."""
        reference = self.record["image"]
        if "ref" in reference and reference.get("sha256"):
            actual = file_sha256(self._reference_path())
            if actual != reference["sha256"]:
                raise LabelSetError(
                    f"entry {self.id}: {reference['ref']!r} changed since it was added (sha256 "
                    f"{actual[:12]}…, recorded {reference['sha256'][:12]}…)"
                )

    def _file(self, name: str, what: str) -> Path:
        path = self.directory / name
        if not path.is_file():
            raise FileNotFoundError(
                f"entry {self.id}: its {what} file {str(path)!r} is missing; restore it or "
                "remove the entry"
            )
        return path

    def _reference_path(self) -> Path:
        path = Path(self.record["image"]["ref"])
        if not path.exists():
            raise FileNotFoundError(
                f"entry {self.id} references {str(path)!r}, which no longer exists: restore it, "
                f"or remove the entry (LabelSet.remove({self.id}))"
            )
        return path

    def _read_reference(self) -> np.ndarray:
        path = self._reference_path()
        recorded = self.record["image"].get("size")
        if recorded is not None and path.is_file() and path.stat().st_size != recorded:
            raise LabelSetError(
                f"entry {self.id}: {str(path)!r} changed since it was added ({recorded} bytes "
                f"then, {path.stat().st_size} now)"
            )
        return read_reference_frame(self.reference)


def read_reference_frame(reference: ImageReference) -> np.ndarray:
    """Read the frame a reference points at."""
    from ..stack_files import read_stack

    stack = read_stack(reference.path)
    key = reference.key()
    try:
        frame = np.asarray(stack[key])
    except (IndexError, ValueError) as error:
        raise LabelSetError(
            f"reference to {reference.path!r}: index {key} does not fit its shape "
            f"{tuple(stack.shape)} ({error})"
        ) from None
    if frame.ndim not in (2, 3):
        raise LabelSetError(
            f"reference to {reference.path!r}: index {key} of shape {tuple(stack.shape)} is "
            f"not one frame but {frame.shape}"
        )
    return frame


def _check_record(record: Any, dirname: str) -> None:
    if not isinstance(record, dict):
        raise TypeError(f"expected a JSON object, found {type(record).__name__}")
    for key in ("id", "image", "labels", "shape", "dtype", "complete", "objects", "source"):
        if key not in record:
            raise KeyError(f"the field {key!r} is missing")
    if not isinstance(record["id"], int) or str(record["id"]) != dirname.lstrip("0"):
        raise ValueError(f"id {record['id']!r} does not match its folder {dirname!r}")
    image = record["image"]
    if not isinstance(image, dict) or not ({"file", "ref"} & set(image)):
        raise ValueError(f"image {image!r} is neither {{'file': ...}} nor {{'ref': ...}}")
    shape = record["shape"]
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape)):
        raise ValueError(f"shape {shape!r} is not [rows, cols]")
    np.dtype(record["dtype"])  # TypeError names an unknown dtype
    record.setdefault("channels", None)
    if not isinstance(record["complete"], bool):
        raise ValueError(f"complete {record['complete']!r} is not true or false")
    if not isinstance(record["objects"], list) or not isinstance(record["source"], dict):
        raise ValueError("objects must be a list and source an object")
