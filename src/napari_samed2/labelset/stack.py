"""A run's results as one label stack: object ids as label values, and each frame's confidences."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # only for annotations: the label logic itself needs no engine (nor torch)
    from ..engine import FrameResult, PropagationSession

LABEL_DTYPE = np.int32  # the label stacks written (and napari Labels layers' usual dtype)
MAX_OBJECT_ID = int(np.iinfo(LABEL_DTYPE).max)


@dataclass
class StackSegmentation:
    """Labels for every frame, object ids as label values, and each frame's confidences."""

    labels: np.ndarray  # (frames, rows, cols) LABEL_DTYPE
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


def assemble_labels(session: PropagationSession) -> StackSegmentation:
    """The session's latest results as a label stack (higher object ids win any overlaps left
    by a session made with ``non_overlap=False``)."""
    labels = np.zeros((session.num_frames, *session.frame_shape), dtype=LABEL_DTYPE)
    for frame, result in session.results.items():
        for obj_id in sorted(result.masks):
            labels[frame][result.masks[obj_id]] = obj_id
    return StackSegmentation(labels, dict(session.results))
