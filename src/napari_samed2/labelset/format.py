"""The label set's on-disk format: file names, the version, its errors, and the records an
entry.json holds (objects, image references, sources). docs/labelsets.md describes it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "napari-samed2-labelset"
VERSION = 1  # readers refuse a higher one: a newer writer may mean things we cannot read

MANIFEST = "labelset.json"
ENTRIES = "entries"
ENTRY_JSON = "entry.json"
IMAGE_FILE = "image.tif"
LABELS_FILE = "labels.tif"
LOCK_FILE = ".lock"
HOLDER_FILE = ".lock-holder.json"  # who holds the lock (the lock file itself is truncated
# by every process that tries it, so it cannot carry this)
TMP_PREFIX = ".tmp-"
ID_DIGITS = 6

ORIGINS = ("predicted", "accepted", "corrected", "imported")
SOURCE_KINDS = ("layer", "file", "pairs")
MAX_LABEL_ID = 2**32 - 1  # labels are stored as uint8, uint16 or uint32


class LabelSetError(ValueError):
    """A label set (or a file in it) that is not what the format says."""


class LabelSetVersionError(LabelSetError):
    """A label set written by a newer format version than this code reads."""


class LabelSetLockedError(RuntimeError):
    """Another process is writing the label set."""


def entry_dirname(entry_id: int) -> str:
    return f"{entry_id:0{ID_DIGITS}d}"


@dataclass(frozen=True)
class ObjectRecord:
    """One object's mask on one frame: its label id and where the mask came from.

    ``origin`` is one of `ORIGINS`; ``confidence`` in [0, 1] or None; ``model`` is
    ``{"name": str, "sha256": str | None}`` or None; ``prompts`` is ``{"points": [[row, col],
    ...], "labels": [1 | 0, ...], "box": [r0, c0, r1, c1] | None}`` or None.
    """

    id: int
    origin: str = "imported"
    confidence: float | None = None
    model: dict[str, Any] | None = None
    prompts: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, numbers.Integral):
            raise ValueError(f"object id {self.id!r} is not an integer")
        object.__setattr__(self, "id", int(self.id))  # numpy integers arrive from label arrays
        if not 1 <= self.id <= MAX_LABEL_ID:
            raise ValueError(f"object id {self.id} is outside 1..{MAX_LABEL_ID}")
        if self.origin not in ORIGINS:
            raise ValueError(f"object {self.id}: origin {self.origin!r} is not one of {ORIGINS}")
        if self.confidence is not None:
            value = float(self.confidence)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(
                    f"object {self.id}: confidence {self.confidence!r} is not in [0, 1]"
                )
            object.__setattr__(self, "confidence", value)
        if self.model is not None:
            _check_model(self.id, self.model)
        if self.prompts is not None:
            object.__setattr__(self, "prompts", _checked_prompts(self.id, self.prompts))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "origin": self.origin,
            "confidence": self.confidence,
            "model": self.model,
            "prompts": self.prompts,
        }

    @classmethod
    def from_json(cls, data: Any) -> ObjectRecord:
        if not isinstance(data, dict) or "id" not in data:
            raise ValueError(f"object record {data!r} is not an object with an 'id'")
        return cls(
            id=data["id"],
            origin=data.get("origin", "imported"),
            confidence=data.get("confidence"),
            model=data.get("model"),
            prompts=data.get("prompts"),
        )


def _check_model(obj_id: int, model: Any) -> None:
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise ValueError(f"object {obj_id}: model {model!r} is not {{'name': str, 'sha256': ...}}")
    sha = model.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64):
        raise ValueError(f"object {obj_id}: model sha256 {sha!r} is not 64 hex digits")


def _checked_prompts(obj_id: int, prompts: Any) -> dict[str, Any]:
    if not isinstance(prompts, dict):
        raise ValueError(f"object {obj_id}: prompts {prompts!r} is not a dict")
    try:
        points = [[float(r), float(c)] for r, c in prompts.get("points") or []]
        labels = [int(v) for v in prompts.get("labels") or [1] * len(points)]
        box = prompts.get("box")
        box = None if box is None else [float(v) for v in box]
    except (TypeError, ValueError) as error:
        raise ValueError(f"object {obj_id}: prompts {prompts!r} are malformed ({error})") from None
    if len(labels) != len(points) or any(v not in (0, 1) for v in labels):
        raise ValueError(
            f"object {obj_id}: prompt labels {labels} must be 1 (positive) or 0 (negative), "
            f"one per point ({len(points)} points)"
        )
    if box is not None and len(box) != 4:
        raise ValueError(f"object {obj_id}: box {box} is not [row0, col0, row1, col1]")
    return {"points": points, "labels": labels, "box": box}


@dataclass(frozen=True)
class ImageReference:
    """An entry's frame kept in its source file instead of copied: ``path`` (a stack or
    image file), the frame ``index`` along ``axis``, and ``position`` on the other axes
    before rows and columns (``axis`` and ``index`` None for a 2-D file)."""

    path: str
    axis: int | None = 0
    index: int | None = 0
    position: tuple[int, ...] = field(default_factory=tuple)

    def key(self) -> tuple[int, ...]:
        """The index into the source array that gives the frame (its leading axes)."""
        key = [int(v) for v in self.position]
        if self.axis is not None:
            if not 0 <= self.axis <= len(key) or self.index is None:
                raise LabelSetError(
                    f"reference to {self.path!r}: axis {self.axis}, index {self.index} and "
                    f"position {key} do not name one frame"
                )
            key.insert(self.axis, int(self.index))
        return tuple(key)


def source_record(source: dict[str, Any] | None) -> dict[str, Any]:
    """A source as entry.json stores it: kind, name, path, axis, frame, position (+ extras)."""
    source = dict(source or {"kind": "layer"})
    kind = source.get("kind", "layer")
    if kind not in SOURCE_KINDS:
        raise ValueError(f"source kind {kind!r} is not one of {SOURCE_KINDS}")
    record = {"kind": kind, "name": None, "path": None, "axis": None, "frame": None}
    record["position"] = None
    record.update(source)
    for key in ("axis", "frame"):
        if record[key] is not None:
            record[key] = int(record[key])
    if record["position"] is not None:
        record["position"] = [int(v) for v in record["position"]]
    return record


def check_manifest(manifest: Any, path: Path) -> None:
    """Raise `LabelSetError` unless ``manifest`` is this format's, in a version we read."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise LabelSetError(f"{str(path)!r}: format {found!r} is not {FORMAT!r}")
    version = manifest.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise LabelSetError(f"{str(path)!r}: version {version!r} is not a positive integer")
    if version > VERSION:
        from .. import __version__

        raise LabelSetVersionError(
            f"{str(path.parent)!r} was written in label-set format version {version}; "
            f"napari-samed2 {__version__} reads version {VERSION} and older: upgrade "
            "napari-samed2 to open it"
        )


SOURCE_FIELDS = ("kind", "name", "path", "axis", "position")


def source_key(source: dict[str, Any]) -> tuple:
    """What makes objects of different entries the same objects: their source minus the frame
    (kind, name, path, axis and position on the other axes)."""
    return tuple(
        tuple(source[f]) if isinstance(source.get(f), list) else source.get(f)
        for f in SOURCE_FIELDS
    )
