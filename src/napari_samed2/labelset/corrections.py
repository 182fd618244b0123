"""Notice user corrections on a label array and remember them until the user accepts them.

napari emits ``Labels.events.paint`` with the history item of each brush stroke, fill or
``data_setitem``: a list of atoms, either ``(indices, old_values, new_values)`` tuples or
masked-paint atoms ``(slice_key, mask, old_values, new_value)``. From them we read which frames
changed and which labels were painted or erased there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class FrameSlicing(Protocol):
    """How a label array is cut into frames (``ui.frames.FrameGeometry`` is one).

    Only what `painted_frames` reads; attributes, read-only.
    """

    @property
    def frame_axis(self) -> int | None:
        """The array's frame axis; None for a single 2-D frame."""

    @property
    def fixed(self) -> Mapping[int, int]:
        """Axes held at one index (e.g. the channel of a CZYX layer) to that index."""


@dataclass(frozen=True)
class Segment:
    """One ``session.propagate`` call of a run (``stop`` inclusive, as in the engine).

    Defined here, not beside the worker that runs it (``ui.runner``), because
    `correction_segments` plans them without Qt.
    """

    direction: str
    start: int | None = None
    stop: int | None = None


@dataclass(frozen=True)
class AcceptedFrame:
    """A frame whose mask the user corrected or accepted: material for a label set.

    Attributes
    ----------
    image_name : str
        The image layer's name.
    frame : int
        Frame index along the propagation axis.
    obj_id : int
        The object's label id.
    mask : ndarray of bool, shape (Y, X)
        The accepted mask.
    kind : str
        ``"correction"`` (painted by the user) or ``"prompt"`` (segmented from a prompt).
    """

    image_name: str
    frame: int
    obj_id: int
    mask: np.ndarray
    kind: str = "correction"


def painted_frames(atoms: Iterable, geometry: FrameSlicing) -> dict[int, set[int]]:
    """Frames touched by a paint event and the label values painted or erased on each.

    Parameters
    ----------
    atoms : iterable
        ``event.value`` of a Labels ``paint`` event.
    geometry : FrameSlicing
        How the layer is cut into frames; edits outside its fixed slice are ignored.

    Returns
    -------
    dict of int to set of int
        Frame index to the non-zero label values that were there before or are there now.
    """
    touched: dict[int, set[int]] = {}
    for atom in atoms:
        if len(atom) == 3:
            indices, old, new = atom
            indices = tuple(np.asarray(axis_indices).ravel() for axis_indices in indices)
            if not indices or indices[0].size == 0:
                continue
            keep = np.ones(indices[0].shape, dtype=bool)
            for axis, value in geometry.fixed.items():
                keep &= indices[axis] == value
            frames = (
                indices[geometry.frame_axis][keep]
                if geometry.frame_axis is not None
                else np.zeros(int(keep.sum()), dtype=int)
            )
            old = np.broadcast_to(np.asarray(old), keep.shape)[keep]
            new = np.broadcast_to(np.asarray(new), keep.shape)[keep]
            for frame in np.unique(frames):
                on_frame = frames == frame
                values = set(np.unique(old[on_frame]).tolist()) | set(
                    np.unique(new[on_frame]).tolist()
                )
                touched.setdefault(int(frame), set()).update(int(v) for v in values if v != 0)
        else:
            slice_key, _mask, old, new_value = atom[:4]
            if any(
                not _slice_contains(slice_key[axis], value)
                for axis, value in geometry.fixed.items()
            ):
                continue
            if geometry.frame_axis is None:
                frames = [0]
            else:
                piece = slice_key[geometry.frame_axis]
                if isinstance(piece, slice):
                    frames = range(piece.start or 0, piece.stop)
                else:
                    frames = [piece]
            values = set(np.unique(np.asarray(old)).tolist()) | {int(new_value)}
            for frame in frames:
                touched.setdefault(int(frame), set()).update(int(v) for v in values if v != 0)
    return touched


def _slice_contains(piece, value: int) -> bool:
    if isinstance(piece, slice):
        return (piece.start or 0) <= value < (piece.stop if piece.stop is not None else value + 1)
    return int(piece) == value


@dataclass
class PendingCorrections:
    """Frames the user edited since the last accept: frame to the object ids edited there."""

    frames: dict[int, set[int]] = field(default_factory=dict)

    def note(self, touched: dict[int, set[int]], object_ids: Iterable[int]) -> None:
        known = set(object_ids)
        for frame, values in touched.items():
            objects = values & known
            if objects:
                self.frames.setdefault(frame, set()).update(objects)

    def take(self) -> list[tuple[int, int]]:
        """All pending (frame, obj_id) pairs in frame order; clears the list."""
        pairs = sorted((frame, obj) for frame, objs in self.frames.items() for obj in objs)
        self.frames = {}
        return pairs

    def discard_object(self, obj_id: int) -> None:
        for objs in self.frames.values():
            objs.discard(obj_id)
        self.frames = {frame: objs for frame, objs in self.frames.items() if objs}

    def __len__(self) -> int:
        return sum(len(objs) for objs in self.frames.values())


def correction_segments(
    corrected: list[int],
    confirmed: dict[int, set[int]],
    direction: str,
    absent: Iterable[int] = (),
) -> list[Segment]:
    """Propagation segments that re-run the frames after corrections.

    From each corrected frame, in ``direction`` ("forward", "backward" or "both"), up to but
    not including the next frame the user confirmed (for any object), so confirmed frames are
    never recomputed. ``confirmed`` must already contain the corrected frames.

    A frame in ``absent`` (its corrections all say "the object is not here") does not start
    a segment toward a confirmed frame that is not absent too: that segment runs from the
    confirmed frame toward the absent one instead. Tracking carries an object on; it rarely
    brings back one it has lost, so propagating away from "absent" toward a frame where the
    object is present would erase it on the frames between.
    """
    if direction not in ("both", "forward", "backward"):
        raise ValueError(f"direction must be 'both', 'forward' or 'backward', got {direction!r}")
    absent = set(absent)
    anchors = sorted(set().union(*confirmed.values())) if confirmed else sorted(corrected)
    segments = []
    for frame in corrected:
        if direction in ("forward", "both"):
            later = [f for f in anchors if f > frame]
            if later and frame in absent and later[0] not in absent:
                if later[0] - 1 > frame:
                    segments.append(Segment("backward", start=later[0], stop=frame + 1))
            else:
                stop = (later[0] - 1) if later else None
                if stop is None or stop > frame:
                    segments.append(Segment("forward", start=frame, stop=stop))
        if direction in ("backward", "both"):
            earlier = [f for f in anchors if f < frame]
            if earlier and frame in absent and earlier[-1] not in absent:
                if earlier[-1] + 1 < frame:
                    segments.append(Segment("forward", start=earlier[-1], stop=frame - 1))
            else:
                stop = (earlier[-1] + 1) if earlier else None
                if stop is None or stop < frame:
                    segments.append(Segment("backward", start=frame, stop=stop))
    return segments
