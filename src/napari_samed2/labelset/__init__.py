"""The headless label logic and the on-disk label set.

No Qt, no napari: merging objects into a label array, the user's pending corrections and
accepted frames, the propagation segments a correction re-runs, which of a run's masks are
written (the write policy), and a run's results assembled into a label stack. The label set
(`LabelSet`) keeps labelled frames on disk for training: atomic appends under a writer lock,
import from layers, stacks and TIFF pairs, export to TIFF pairs (docs/labelsets.md).
"""

from .corrections import (
    AcceptedFrame,
    FrameSlicing,
    PendingCorrections,
    Segment,
    correction_segments,
    painted_frames,
)
from .entry import Entry
from .exporters import ExportReport, export_pairs
from .format import (
    FORMAT,
    SOURCE_FIELDS,
    VERSION,
    ImageReference,
    LabelSetError,
    LabelSetLockedError,
    LabelSetVersionError,
    ObjectRecord,
    source_key,
)
from .importers import ImportReport, import_layer, import_stack
from .merge import merge_object, merge_objects
from .pairs import find_pairs, import_pairs
from .provenance import model_record
from .stack import LABEL_DTYPE, MAX_OBJECT_ID, StackSegmentation, assemble_labels
from .store import LabelSet
from .write_policy import FrameWrite, frame_write

__all__ = [
    "FORMAT",
    "LABEL_DTYPE",
    "MAX_OBJECT_ID",
    "SOURCE_FIELDS",
    "VERSION",
    "AcceptedFrame",
    "Entry",
    "ExportReport",
    "FrameSlicing",
    "FrameWrite",
    "ImageReference",
    "ImportReport",
    "LabelSet",
    "LabelSetError",
    "LabelSetLockedError",
    "LabelSetVersionError",
    "ObjectRecord",
    "PendingCorrections",
    "Segment",
    "StackSegmentation",
    "assemble_labels",
    "correction_segments",
    "export_pairs",
    "find_pairs",
    "frame_write",
    "import_layer",
    "import_pairs",
    "import_stack",
    "merge_object",
    "merge_objects",
    "model_record",
    "painted_frames",
    "source_key",
]
