"""Headless segmentation of a whole stack: prompts in, a label stack and confidences out.

The CLI's ``propagate`` and ``demo`` commands call this; it drives the same
`PropagationSession` the napari widget uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .engine import FrameResult, PropagationSession
from .engine.errors import FrameDataError
from .labelset.stack import LABEL_DTYPE, MAX_OBJECT_ID, StackSegmentation, assemble_labels

PROMPT_KINDS = ("point", "negative", "box")


@dataclass(frozen=True)
class Prompt:
    """One prompt on one frame for one object.

    ``coords`` is ``(row, col)`` for points and ``(row0, col0, row1, col1)`` for boxes, in the
    frame's pixel coordinates.
    """

    kind: str
    frame: int
    obj_id: int
    coords: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.kind not in PROMPT_KINDS:
            raise ValueError(f"prompt kind must be one of {PROMPT_KINDS}, got {self.kind!r}")
        wanted = 4 if self.kind == "box" else 2
        if len(self.coords) != wanted:
            raise ValueError(
                f"a {self.kind} prompt needs {wanted} coordinates after the frame, "
                f"got {len(self.coords)}: {self.coords}"
            )
        if not 1 <= self.obj_id <= MAX_OBJECT_ID:
            raise ValueError(
                f"object id {self.obj_id} is not usable: object ids start at 1 (0 is the "
                f"background) and must fit the {np.dtype(LABEL_DTYPE).name} label file, "
                f"so 1..{MAX_OBJECT_ID}"
            )


@dataclass(frozen=True)
class StackAxes:
    """Which axis of a stack to propagate along, and where the other leading axes are held.

    ``position`` follows `PropagationSession`'s ``position``: one index per axis before rows
    and columns (the propagation axis's entry is ignored); ``None`` when there is no other.
    """

    axis: int
    position: tuple[int, ...] | None = None


def choose_axes(
    shape: Sequence[int], axis: int | None = None, channel: int | None = None
) -> StackAxes:
    """Decide the propagation axis of a stack read from a file, refusing to guess.

    A ZYX/TYX stack (optionally with a last RGB axis) propagates along axis 0 by default. A
    stack with two axes before rows and columns (CZYX, ZCYX, TZYX) has no safe default:
    propagating along the wrong one would treat channels as slices. It needs ``axis`` (the
    one to propagate along) and ``channel`` (the index along the other one).

    Raises
    ------
    FrameDataError
        The stack needs ``axis``/``channel`` and did not get them, or they are out of range.
    """
    shape = tuple(int(n) for n in shape)
    rgb = len(shape) >= 3 and shape[-1] in (3, 4)  # the guess FrameSource and napari make
    leading = max(len(shape) - 2 - int(rgb), 0)
    if leading <= 1:
        if channel is not None:
            raise FrameDataError(
                f"--channel {channel} given, but the input (shape {shape}) has no axis besides "
                "the propagation axis to pick a channel from; leave --channel out"
            )
        return StackAxes(0 if axis is None else int(axis))
    if leading > 2:
        raise FrameDataError(
            f"the input has shape {shape}: {leading} axes before rows and columns; at most "
            "two are supported (e.g. CZYX). Save one channel or time point per file"
        )
    if axis is None or channel is None:
        raise FrameDataError(
            f"the input has shape {shape}: two axes before rows and columns (e.g. CZYX, ZCYX "
            "or TZYX), and propagating along the wrong one would treat channels as slices. "
            "Pass --axis (0 or 1) for the axis to propagate along and --channel N for the "
            "index along the other one, e.g. --axis 1 --channel 0 for channel 0 of a CZYX stack"
        )
    resolved = int(axis) + leading if axis < 0 else int(axis)
    if resolved not in (0, 1):
        raise FrameDataError(
            f"--axis {axis} cannot be propagated along in shape {shape}; expected 0 or 1"
        )
    other = 1 - resolved
    if not 0 <= channel < shape[other]:
        raise FrameDataError(
            f"--channel {channel} is out of range for axis {other} of shape {shape}; expected "
            f"0..{shape[other] - 1}"
        )
    position = [0, 0]
    position[other] = int(channel)
    return StackAxes(resolved, tuple(position))


def segment_stack(
    session: PropagationSession,
    prompts: Iterable[Prompt],
    direction: str = "both",
    on_frame: Callable[[FrameResult, int, int], None] | None = None,
) -> StackSegmentation:
    """Apply ``prompts`` to ``session``, propagate, and assemble the label stack.

    Parameters
    ----------
    on_frame : callable, optional
        Called as ``on_frame(result, done, total)`` after every propagated frame.
    """
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts given; add at least one point or box")
    by_frame_object: dict[tuple[int, int], list[Prompt]] = {}
    for prompt in prompts:
        by_frame_object.setdefault((prompt.frame, prompt.obj_id), []).append(prompt)
    for (frame, obj_id), group in by_frame_object.items():
        points = [p.coords for p in group if p.kind in ("point", "negative")]
        labels = [1 if p.kind == "point" else 0 for p in group if p.kind != "box"]
        boxes = [p.coords for p in group if p.kind == "box"]
        if len(boxes) > 1:
            raise ValueError(f"object {obj_id} has {len(boxes)} boxes on frame {frame}; give one")
        if boxes:
            session.add_box(frame, obj_id, boxes[0], points or None, labels or None)
        else:
            session.add_points(frame, obj_id, np.asarray(points), np.asarray(labels))
    total = session.num_frames
    done = 0
    for result in session.propagate(direction=direction):
        done += 1
        if on_frame is not None:
            on_frame(result, done, total)
    return assemble_labels(session)
