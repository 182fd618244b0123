"""Import labelled frames into a label set: a napari layer's arrays (any tool's labels) or a
stack file with its label stack; folders of TIFF pairs are `pairs.py`'s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .format import ImageReference
from .store import LabelSet


@dataclass
class ImportReport:
    """What an import added: entry ids, masks (one per object per frame), and what it left
    out with the reason (images without a mask, frames without labels)."""

    entries: list[int] = field(default_factory=list)
    masks: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FramePlan:
    """Which frames of a stack to import: along ``axis`` (None: one 2-D frame), ``frames``
    on it, at every ``position`` on the other axes before rows and columns."""

    axis: int | None
    frames: list[int | None]
    positions: list[tuple[int, ...]]
    listed: bool  # frames were chosen: import them even with no labels (all objects absent)

    def keys(self) -> Iterator[tuple[tuple[int, ...], int | None, tuple[int, ...]]]:
        """(index into the stack, frame, position) for every frame to import."""
        for position in self.positions:
            for frame in self.frames:
                key = list(position)
                if frame is not None:
                    key.insert(self.axis, frame)
                yield tuple(key), frame, position


def frame_plan(
    image_shape: Sequence[int],
    labels_shape: Sequence[int],
    axis: int | None = 0,
    frames: Sequence[int] | None = None,
) -> FramePlan:
    """Check an image/labels pair of shapes and choose the frames to import.

    The labels have the image's shape, or the image has one more, trailing channel axis.
    The last two label axes are rows and columns; ``axis`` is one of the others.

    Raises
    ------
    ValueError
        Shapes that do not match, an axis that is not a frame axis, frames out of range.
    """
    image_shape, labels_shape = tuple(image_shape), tuple(labels_shape)
    if len(labels_shape) < 2:
        raise ValueError(f"labels have shape {labels_shape}: expected rows and columns at least")
    if image_shape != labels_shape and image_shape[:-1] != labels_shape:
        raise ValueError(
            f"image shape {image_shape} and labels shape {labels_shape} do not match: labels "
            "must have the image's shape (the image may have one more, trailing channel axis)"
        )
    leading = len(labels_shape) - 2
    if leading == 0:
        if frames is not None:
            raise ValueError(f"frames {list(frames)} given, but the labels are one 2-D frame")
        return FramePlan(None, [None], [()], listed=False)
    axis = 0 if axis is None else int(axis)
    if not 0 <= axis < leading:
        raise ValueError(
            f"axis {axis} is not a frame axis of labels with shape {labels_shape}: choose "
            f"0..{leading - 1} (the last two axes are rows and columns)"
        )
    count = labels_shape[axis]
    chosen = list(range(count)) if frames is None else sorted({int(f) for f in frames})
    outside = [f for f in chosen if not 0 <= f < count]
    if outside:
        raise ValueError(
            f"frames {outside} are outside 0..{count - 1} along axis {axis} "
            f"(labels shape {labels_shape})"
        )
    others = [labels_shape[i] for i in range(leading) if i != axis]
    return FramePlan(axis, chosen, list(np.ndindex(*others)), listed=frames is not None)


def import_layer(
    labelset: LabelSet,
    image,
    labels,
    *,
    image_name: str,
    labels_name: str | None = None,
    axis: int | None = 0,
    frames: Sequence[int] | None = None,
) -> ImportReport:
    """Import a napari Image layer's data and a Labels layer's data (from any tool).

    Arrays only, so no napari is needed: numpy, dask or zarr, 2-D (one frame) or stacks
    whose last two axes are rows and columns, ``axis`` the frame axis. Without ``frames``,
    each frame holding any label is imported, complete; with ``frames``, exactly those,
    complete (an id of the stack missing on a listed frame is absent there).
    """
    source = {"kind": "layer", "name": image_name, "labels": labels_name}
    return _import_frames(labelset, image, labels, axis, frames, source, reference_path=None)


def import_stack(
    labelset: LabelSet,
    image_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    *,
    axis: int | None = 0,
    frames: Sequence[int] | None = None,
    reference: bool = False,
) -> ImportReport:
    """Import frames of a stack file and its label stack (.tif, .tiff, .npy, .zarr), read a
    frame at a time. Frames are chosen as in `import_layer`. ``reference``: record the
    stack's path, axis and index (and its sha256) instead of copying the frames.
    """
    from ..stack_files import read_stack

    paths = {"image": Path(image_path), "labels": Path(labels_path)}
    for what, path in paths.items():
        if not path.exists():
            raise FileNotFoundError(f"{what} file {str(path)!r} does not exist")
    image, labels = read_stack(paths["image"]), read_stack(paths["labels"])
    source = {
        "kind": "file",
        "name": paths["image"].name,
        "path": str(paths["image"].resolve()),
        "labels_path": str(paths["labels"].resolve()),
    }
    ref = str(paths["image"].resolve()) if reference else None
    return _import_frames(labelset, image, labels, axis, frames, source, reference_path=ref)


def _import_frames(
    labelset: LabelSet,
    image,
    labels,
    axis: int | None,
    frames: Sequence[int] | None,
    source: dict[str, Any],
    reference_path: str | None,
) -> ImportReport:
    try:
        plan = frame_plan(np.shape(image), np.shape(labels), axis, frames)
    except ValueError as error:
        raise ValueError(f"{source['name']}: {error}") from None
    report = ImportReport()
    empty = 0
    with labelset.writing():  # one import, one writer: nothing interleaves with it
        for key, frame, position in plan.keys():
            frame_labels = np.asarray(labels[key])
            if not plan.listed and not frame_labels.any():
                empty += 1
                continue
            where = {"frame": frame, "position": list(position) if frame is not None else None}
            ref = None
            if reference_path is not None:
                ref = ImageReference(reference_path, plan.axis, frame, position)
            try:
                entry = labelset.add(
                    None if ref else np.asarray(image[key]),
                    frame_labels,
                    complete=True,
                    source={**source, "axis": plan.axis, **where},
                    reference=ref,
                )
            except ValueError as error:
                place = "" if frame is None else f"frame {frame} (axis {plan.axis}) "
                place += f"at position {list(position)} " if position else ""
                raise ValueError(f"{source['name']}: {place}{error}") from None
            report.entries.append(entry.id)
            report.masks += len(entry.objects)
    if empty:
        report.skipped.append(f"{empty} frames without any label")
    return report
