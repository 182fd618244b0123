"""What a session hands back per frame: masks at the frame's resolution and their confidence."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DIRECTIONS = ("both", "forward", "backward")


@dataclass
class FrameResult:
    """The segmentation of one frame, for every object.

    Attributes
    ----------
    frame : int
        Frame index along the session's axis.
    masks : dict of int to ndarray
        Object id to a boolean mask of the frame's shape ``(rows, cols)``.
    iou : dict of int to float
        Object id to the mask decoder's predicted IoU (in [0, 1] for nets whose IoU head
        uses a sigmoid, as all sam2.1 configs do).
    object_score : dict of int to float
        Object id to the object-presence logit (``> 0``: the object is present).
    in_memory : dict of int to bool
        Object id to whether this frame's prediction was written to the recent memory.
    prompted : dict of int to bool
        Object id to whether the user prompted or corrected this frame.
    """

    frame: int
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    iou: dict[int, float] = field(default_factory=dict)
    object_score: dict[int, float] = field(default_factory=dict)
    in_memory: dict[int, bool] = field(default_factory=dict)
    prompted: dict[int, bool] = field(default_factory=dict)

    @property
    def confidence(self) -> dict[int, float]:
        """Object id to a confidence in [0, 1]: the predicted IoU if the object is present,
        else 0 (a frame where the object is absent has nothing to trust)."""
        return {
            obj_id: float(min(max(iou, 0.0), 1.0))
            if self.object_score.get(obj_id, 0.0) > 0
            else 0.0
            for obj_id, iou in self.iou.items()
        }

    def merged(self, other: FrameResult) -> FrameResult:
        """This result with ``other``'s objects added or replaced (same frame)."""
        if other.frame != self.frame:
            raise ValueError(f"cannot merge results of frames {self.frame} and {other.frame}")
        return FrameResult(
            frame=self.frame,
            masks={**self.masks, **other.masks},
            iou={**self.iou, **other.iou},
            object_score={**self.object_score, **other.object_score},
            in_memory={**self.in_memory, **other.in_memory},
            prompted={**self.prompted, **other.prompted},
        )

    def without(self, obj_id: int) -> FrameResult:
        """This result without object ``obj_id``."""
        return FrameResult(
            frame=self.frame,
            **{
                name: {k: v for k, v in getattr(self, name).items() if k != obj_id}
                for name in ("masks", "iou", "object_score", "in_memory", "prompted")
            },
        )


def frame_order(
    direction: str, start: int, stop: int | None, num_frames: int
) -> tuple[list[int], list[int]]:
    """The frames a propagate call visits, as (forward part, backward part).

    ``stop`` is inclusive. With ``direction="both"`` the forward part runs from ``start`` to the
    last frame and the backward part from ``start - 1`` to frame 0 (``stop`` must be None).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if direction == "both":
        if stop is not None:
            raise ValueError(
                f"stop={stop!r} needs direction 'forward' or 'backward'; "
                "'both' always runs to both ends"
            )
        return list(range(start, num_frames)), list(range(start - 1, -1, -1))
    if direction == "forward":
        stop = num_frames - 1 if stop is None else stop
        if stop < start:
            raise ValueError(f"forward propagation needs stop >= start, got {start=} {stop=}")
        return list(range(start, stop + 1)), []
    stop = 0 if stop is None else stop
    if stop > start:
        raise ValueError(f"backward propagation needs stop <= start, got {start=} {stop=}")
    return [], list(range(start, stop - 1, -1))


def frames_total(direction: str, start: int, stop: int | None, num_frames: int) -> int:
    """How many results a ``propagate(direction, start, stop)`` call yields (for progress bars).

    ``start`` must be resolved already (`PropagationSession.resolve_start` does it).
    """
    forward, backward = frame_order(direction, start, stop, num_frames)
    return len(forward) + len(backward)
