"""Headless segmentation of a whole stack: prompts in, a label stack and confidences out.

The CLI's ``propagate`` and ``demo`` commands call this; it drives the same
`PropagationSession` the napari widget uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .engine import FrameResult, PropagationSession

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
        if self.obj_id < 1:
            raise ValueError(f"object ids start at 1, got {self.obj_id}")


PROMPT_TEXT = re.compile(r"^\s*([-\d.,\s]+?)\s*(?:@\s*(\d+))?\s*$")


def parse_prompt(kind: str, text: str) -> Prompt:
    """Parse ``"FRAME,ROW,COL[@OBJ]"`` (points) or ``"FRAME,ROW0,COL0,ROW1,COL1[@OBJ]"`` (box)."""
    match = PROMPT_TEXT.match(text)
    if not match:
        raise ValueError(f"cannot read {kind} prompt {text!r}; expected e.g. '12,40,55@2'")
    try:
        numbers = [float(part) for part in match.group(1).split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"cannot read {kind} prompt {text!r}: not numbers") from None
    if not numbers or numbers[0] != int(numbers[0]):
        raise ValueError(f"{kind} prompt {text!r} must start with an integer frame index")
    return Prompt(kind, int(numbers[0]), int(match.group(2) or 1), tuple(numbers[1:]))


@dataclass
class StackSegmentation:
    """Labels for every frame, object ids as label values, and each frame's confidences."""

    labels: np.ndarray  # (frames, rows, cols) int32
    results: dict[int, FrameResult] = field(default_factory=dict)

    def confidence_rows(self) -> list[tuple[int, int, float, float, float, bool]]:
        """(frame, object, confidence, predicted IoU, object score, in memory) per frame."""
        rows = []
        for frame in sorted(self.results):
            result = self.results[frame]
            confidence = result.confidence
            for obj_id in sorted(result.iou):
                rows.append(
                    (
                        frame,
                        obj_id,
                        confidence[obj_id],
                        result.iou[obj_id],
                        result.object_score[obj_id],
                        bool(result.in_memory.get(obj_id, False)),
                    )
                )
        return rows


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


def assemble_labels(session: PropagationSession) -> StackSegmentation:
    """The session's latest results as a label stack (higher object ids win any overlaps left
    by a session made with ``non_overlap=False``)."""
    labels = np.zeros((session.num_frames, *session.frame_shape), dtype=np.int32)
    for frame, result in session.results.items():
        for obj_id in sorted(result.masks):
            labels[frame][result.masks[obj_id]] = obj_id
    return StackSegmentation(labels, dict(session.results))
