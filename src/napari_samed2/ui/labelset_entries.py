"""What the annotator adds to a label set for one frame: the image frame (original dtype), the
Labels layer's frame, each object's provenance and the frame's source; and the write itself.

No Qt here, so the writes can run in a worker. A frame added again (same image layer, axis,
frame and position) replaces its earlier entry: the new one is written first, then the old
one removed, under one hold of the writer lock (a crash between the two leaves both, and
training reads the newer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..labelset import LabelSet, ObjectRecord, model_record
from ..model import LoadedModel
from .frames import FrameGeometry
from .image_state import ImageState
from .prompt_layers import prompts_for

PLACE_FIELDS = ("kind", "name", "axis", "frame", "position")
_model_records: dict[tuple[str, str | None], dict[str, Any]] = {}


@dataclass
class FrameRecord:
    """One frame ready to append: ``read_image`` gives the frame (it may read a lazy array,
    so a worker calls it), ``labels`` is a copy of the Labels layer's frame."""

    read_image: Callable[[], np.ndarray]
    labels: np.ndarray
    objects: list[ObjectRecord]
    source: dict[str, Any]
    complete: bool = True


@dataclass
class WriteReport:
    """What a write did: the new entry ids and how many earlier entries they replaced."""

    added: list[int] = field(default_factory=list)
    replaced: int = 0


def frame_source(state: ImageState, geometry: FrameGeometry, frame: int) -> dict[str, Any]:
    """The entry's source: the image layer, the Labels layer, the axis, frame and position on
    the other leading axes (as `labelset.import_layer` records a layer's frames)."""
    stack = geometry.frame_axis is not None
    return {
        "kind": "layer",
        "name": state.image.name,
        "labels": state.labels.name if state.labels is not None else None,
        "axis": geometry.frame_axis,
        "frame": int(frame) if stack else None,
        "position": [geometry.fixed[axis] for axis in sorted(geometry.fixed)] if stack else None,
    }


def model_provenance(model: LoadedModel | None) -> dict[str, Any] | None:
    """``{"name", "sha256"}`` of the model in use: the registry's checksum, else its file's
    (hashed once per file), else None."""
    if model is None:
        return None
    source = str(model.source) if model.source is not None else None
    key = (model.name, source)
    if key not in _model_records:
        from ..model import REGISTRY

        spec = REGISTRY.get(model.name)
        sha = getattr(spec, "sha256", None) if spec is not None else None
        weights = source if sha is None and source and Path(source).is_file() else None
        _model_records[key] = model_record(model.name, weights, sha)
    return _model_records[key]


def frame_record(
    state: ImageState,
    geometry: FrameGeometry,
    frame: int,
    model: LoadedModel | None,
    corrected: Iterable[int] = (),
    confirmed: dict[int, set[int]] | None = None,
) -> FrameRecord:
    """The frame ``frame`` of ``state``'s image and Labels layer as a label-set entry.

    Each object's origin: ``"corrected"`` for ``corrected`` (just accepted), ``"accepted"``
    on frames the user prompted or corrected (``confirmed``, default the session's),
    ``"predicted"`` where the session computed it, ``"imported"`` for labels the model never
    saw (painted by hand or made by another tool). Confidence comes from the session's result.
    """
    if state.labels is None:
        raise ValueError(f"image {state.image.name!r} has no Labels layer to take masks from")
    index = geometry.frame_index(frame)
    labels = np.array(state.labels.data[index], copy=True)
    data, image_frame = state.image.data, int(frame)

    def read_image() -> np.ndarray:
        return np.asarray(geometry.stack(data)[image_frame])

    confirmed = state.confirmed() if confirmed is None else confirmed
    corrected = {int(obj) for obj in corrected}
    known = set(state.object_ids())
    result = state.results.get(frame)
    provenance = model_provenance(model)
    objects = []
    for obj_id in (int(v) for v in np.unique(labels) if v > 0):
        if obj_id in corrected:
            origin = "corrected"
        elif frame in confirmed.get(obj_id, ()):
            origin = "accepted"
        elif obj_id in known and result is not None and obj_id in result.masks:
            origin = "predicted"
        else:
            origin = "imported"
        confidence = None
        if origin != "imported" and result is not None and obj_id in result.iou:
            confidence = result.confidence[obj_id]
        if origin == "corrected":
            confidence = 1.0
        prompts = prompts_for(state.points, state.boxes, geometry, frame, obj_id)
        objects.append(
            ObjectRecord(
                obj_id,
                origin=origin,
                confidence=confidence,
                model=provenance if origin != "imported" else None,
                prompts=None if prompts.empty else _prompt_json(prompts),
            )
        )
    return FrameRecord(read_image, labels, objects, frame_source(state, geometry, frame))


def same_place(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two sources name the same frame of the same layer."""
    return all(_norm(a.get(f)) == _norm(b.get(f)) for f in PLACE_FIELDS)


def write_records(labelset: LabelSet, records: Sequence[FrameRecord]) -> WriteReport:
    """Append ``records`` (each replacing an earlier entry of the same frame), under one
    hold of the writer lock.

    Raises
    ------
    LabelSetLockedError
        Another process writes the set.
    ValueError
        A frame whose labels do not match its image (named), bad ids.
    OSError
        The disk is full or not writable.
    """
    report = WriteReport()
    with labelset.writing():
        earlier = [(e.id, e.source) for e in labelset.entries()]
        for record in records:
            entry = labelset.add(
                record.read_image(),
                record.labels,
                complete=record.complete,
                objects=record.objects,
                source=record.source,
            )
            report.added.append(entry.id)
            for entry_id, source in earlier:
                if same_place(source, record.source):
                    labelset.remove(entry_id)
                    report.replaced += 1
            earlier = [(i, s) for i, s in earlier if not same_place(s, record.source)]
    return report


def set_counts(labelset: LabelSet) -> tuple[int, int]:
    """(entries, objects) of a set; an object is one label id of one source."""
    entries = labelset.entries()
    objects = {
        (tuple(_norm(e.source.get(f)) for f in ("kind", "name", "axis", "position")), obj)
        for e in entries
        for obj in e.object_ids
    }
    return len(entries), len(objects)


def _norm(value):
    return tuple(value) if isinstance(value, list) else value


def _prompt_json(prompts) -> dict[str, Any]:
    return {
        "points": np.asarray(prompts.points, float).tolist(),
        "labels": np.asarray(prompts.labels, int).tolist(),
        "box": None if prompts.box is None else [float(v) for v in prompts.box],
    }
