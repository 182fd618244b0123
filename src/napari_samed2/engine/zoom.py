"""Automatic per-object zoom: each object gets the part of the frame that suits its size.

A nucleus 10 px across in a 2048-px field is less than two pixels of a 256-px model's input,
too small for any model. `fit_region` starts from a small square around the prompt (the
prompt's extent times ``context``, at least ``min_size``), segments the prompted frame there,
and grows the square while the mask runs into its border, so small objects are seen
magnified and large ones whole. `ObjectZoomSessions` keeps one `PropagationSession` per object,
each with its own region, behind the prompt/propagate calls of a single session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .frames import zoom_region
from .results import DIRECTIONS, FrameResult
from .session import PropagationSession

ZOOM_CONTEXT = 4.0  # region side as a multiple of the object's extent
ZOOM_MIN_SIZE = 64  # pixels: the smallest region (a click's first guess)
ZOOM_ROUNDS = 4  # at most this many re-segmentations while growing the region


@dataclass(frozen=True)
class ObjectPrompt:
    """One object's prompt on one frame: clicks and/or a box, in frame pixels ``(row, col)``."""

    frame: int
    points: np.ndarray | None = None  # (N, 2)
    labels: np.ndarray | None = None  # (N,)
    box: tuple[float, float, float, float] | None = None  # (row0, col0, row1, col1)

    def extent_points(self) -> np.ndarray:
        """The points whose extent sets the first region: clicks and box corners."""
        parts = []
        if self.points is not None and len(self.points):
            parts.append(np.asarray(self.points, np.float64).reshape(-1, 2))
        if self.box is not None:
            parts.append(np.asarray(self.box, np.float64).reshape(2, 2))
        if not parts:
            raise ValueError("a prompt needs clicks or a box; got neither")
        return np.concatenate(parts)

    def apply(self, session: PropagationSession, obj_id: int) -> FrameResult:
        if self.box is not None:
            return session.add_box(self.frame, obj_id, self.box, self.points, self.labels)
        return session.add_points(self.frame, obj_id, self.points, self.labels)


def _touches_border(mask: np.ndarray, region: Sequence[int]) -> bool:
    """Whether ``mask`` reaches an edge of ``region`` that is not the frame's edge."""
    row0, col0, row1, col1 = region
    rows, cols = mask.shape
    inside = mask[row0:row1, col0:col1]
    edges = [
        (row0 > 0, inside[0]),
        (row1 < rows, inside[-1]),
        (col0 > 0, inside[:, 0]),
        (col1 < cols, inside[:, -1]),
    ]
    return any(open_edge and edge.any() for open_edge, edge in edges)


def fit_region(
    open_session: Callable[[Sequence[int]], PropagationSession],
    prompt: ObjectPrompt,
    frame_shape: tuple[int, int],
    *,
    context: float = ZOOM_CONTEXT,
    min_size: int = ZOOM_MIN_SIZE,
    rounds: int = ZOOM_ROUNDS,
) -> tuple[tuple[int, int, int, int], PropagationSession]:
    """Find a region where the prompted object is seen whole and as large as possible.

    Parameters
    ----------
    open_session : callable
        ``open_session(region)`` returns a new `PropagationSession` showing that region.
    prompt : ObjectPrompt
        The object's first prompt.
    frame_shape : (int, int)
        ``(rows, cols)`` of the frames.

    Returns
    -------
    region, session
        The region and the session on it, already holding the prompt (as object 1).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    anchor = prompt.extent_points()
    region = zoom_region(anchor, frame_shape, context=context, min_size=min_size)
    for round_ in range(rounds):
        session = open_session(region)
        mask = prompt.apply(session, 1).masks[1]
        full_frame = region[2] - region[0] == min(frame_shape)
        if not mask.any() or full_frame or not _touches_border(mask, region):
            return region, session
        if round_ == rounds - 1:
            return region, session
        rows, cols = np.nonzero(mask)
        extent = np.concatenate(
            [anchor, [[rows.min(), cols.min()], [rows.max() + 1, cols.max() + 1]]]
        )
        grown = zoom_region(extent, frame_shape, context=context, min_size=min_size)
        if grown[2] - grown[0] <= region[2] - region[0]:
            # the mask fills the region: at least double it
            side = min(2 * (region[2] - region[0]), min(frame_shape))
            grown = zoom_region(extent, frame_shape, context=1.0, min_size=side)
        session.close()
        region = grown
    return region, session


class ObjectZoomSessions:
    """Segment and propagate several objects, each in its own automatically zoomed region.

    Parameters
    ----------
    model, data, axis, memory
        As for `PropagationSession`; every object's session shares them.
    session_options : dict, optional
        Further `PropagationSession` keyword arguments (``settings``, ``rgb``, ``position``).
    context, min_size, rounds
        See `fit_region`.
    """

    def __init__(
        self,
        model,
        data,
        axis: int = 0,
        memory: str = "selective",
        *,
        session_options: dict | None = None,
        context: float = ZOOM_CONTEXT,
        min_size: int = ZOOM_MIN_SIZE,
        rounds: int = ZOOM_ROUNDS,
    ):
        self._open = lambda region: PropagationSession(
            model, data, axis, memory, region=region, **(session_options or {})
        )
        probe = PropagationSession(model, data, axis, memory, **(session_options or {}))
        self.frame_shape = probe.frame_shape
        self.num_frames = probe.num_frames
        probe.close()
        self.zoom = {"context": context, "min_size": min_size, "rounds": rounds}
        self.sessions: dict[int, PropagationSession] = {}
        self.regions: dict[int, tuple[int, int, int, int]] = {}

    def add(self, obj_id: int, prompt: ObjectPrompt) -> FrameResult:
        """Prompt ``obj_id``; its first prompt chooses its region, later ones reuse it."""
        if obj_id < 1:
            raise ValueError(f"object ids start at 1, got {obj_id}")
        if obj_id in self.sessions:
            return self._relabel(prompt.apply(self.sessions[obj_id], 1), obj_id)
        region, session = fit_region(self._open, prompt, self.frame_shape, **self.zoom)
        self.sessions[obj_id], self.regions[obj_id] = session, region
        return self._relabel(session.results[prompt.frame], obj_id)

    def propagate(self, direction: str = "both") -> Iterator[tuple[int, FrameResult]]:
        """Propagate every object in turn; yields ``(obj_id, result)`` per frame and object."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        for obj_id, session in sorted(self.sessions.items()):
            for result in session.propagate(direction=direction):
                yield obj_id, self._relabel(result, obj_id)

    @property
    def results(self) -> dict[int, FrameResult]:
        """Frame index to every object's latest result on that frame."""
        merged: dict[int, FrameResult] = {}
        for obj_id, session in sorted(self.sessions.items()):
            for frame, result in session.results.items():
                own = self._relabel(result, obj_id)
                merged[frame] = merged[frame].merged(own) if frame in merged else own
        return merged

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()

    @staticmethod
    def _relabel(result: FrameResult, obj_id: int) -> FrameResult:
        """``result`` of a one-object session with its object 1 renamed ``obj_id``."""
        return FrameResult(
            frame=result.frame,
            masks={obj_id: result.masks[1]} if 1 in result.masks else {},
            iou={obj_id: result.iou[1]} if 1 in result.iou else {},
            object_score={obj_id: result.object_score[1]} if 1 in result.object_score else {},
            in_memory={obj_id: result.in_memory[1]} if 1 in result.in_memory else {},
            prompted={obj_id: result.prompted[1]} if 1 in result.prompted else {},
        )
