"""The headless label logic: what becomes of masks once the engine has made them.

No Qt, no napari: merging objects into a label array, the user's pending corrections and
accepted frames, the propagation segments a correction re-runs, which of a run's masks are
written (the write policy), and a run's results assembled into a label stack. The widget and
the CLI both use it; the next issue grows it into the on-disk label set.
"""

from .corrections import (
    AcceptedFrame,
    FrameSlicing,
    PendingCorrections,
    Segment,
    correction_segments,
    painted_frames,
)
from .merge import merge_object, merge_objects
from .stack import LABEL_DTYPE, MAX_OBJECT_ID, StackSegmentation, assemble_labels
from .write_policy import FrameWrite, frame_write

__all__ = [
    "LABEL_DTYPE",
    "MAX_OBJECT_ID",
    "AcceptedFrame",
    "FrameSlicing",
    "FrameWrite",
    "PendingCorrections",
    "Segment",
    "StackSegmentation",
    "assemble_labels",
    "correction_segments",
    "frame_write",
    "merge_object",
    "merge_objects",
    "painted_frames",
]
