"""What the widget remembers per image layer: frame geometry, session, layers, objects, results.

Switching to another image layer and back restores all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from napari.layers import Image, Labels, Points, Shapes

from ..engine.options import SessionOptions
from ..labelset import PendingCorrections
from ..model.profile import ModelProfile
from .confidence_view import ConfidenceTrack
from .frames import FrameGeometry, axis_kind
from .labels_writer import LabelsWriter
from .model_history import ModelHistory
from .objects import TrackedObject


@dataclass
class ImageState:
    """The annotation state of one image layer.

    Attributes
    ----------
    image : Image
        The image layer.
    frame_axis : int or None
        Chosen propagation axis (None: 2-D, or not chosen yet for 4-D data).
    geometry : FrameGeometry or None
        Geometry of the current session (None until the first action).
    session : PropagationSession or None
        The engine session for ``geometry`` and the loaded model.
    labels, points, boxes : napari layers or None
        Output Labels layer and prompt layers (created on first use).
    objects : list of TrackedObject
        The object list's content while another image is shown.
    selected : int or None
        Selected object id.
    results : dict of int to FrameResult
        Latest result per frame (all objects), for the confidence view.
    pending : PendingCorrections
        User edits not accepted yet.
    options : SessionOptions
        The user's choices for this image's sessions (memory, gate, zoom, connected masks,
        follow motion); ``None`` fields take the model profile's default (`effective_options`).
    history : ModelHistory
        The session's states paired with the Labels layer's undo steps (undo reaches the
        model).
    """

    image: Image
    frame_axis: int | None = None
    geometry: FrameGeometry | None = None
    session: object | None = None
    labels: Labels | None = None
    points: Points | None = None
    boxes: Shapes | None = None
    objects: list[TrackedObject] = field(default_factory=list)
    selected: int | None = None
    results: dict[int, object] = field(default_factory=dict)
    pending: PendingCorrections = field(default_factory=PendingCorrections)
    writer: LabelsWriter | None = None
    # a Labels layer holds one object per pixel: the surest object takes a contested pixel
    options: SessionOptions = field(default_factory=lambda: SessionOptions(non_overlap=True))
    history: ModelHistory = field(default_factory=ModelHistory)

    def effective_options(self, profile: ModelProfile) -> SessionOptions:
        """The options a session of this image gets with a model of ``profile``: the user's
        choices, the profile's defaults for the rest (follow motion by the frame axis's kind:
        time when it is labelled 't', 'time', ...)."""
        kind = (
            None if self.frame_axis is None else axis_kind(self.image.axis_labels, self.frame_axis)
        )
        return self.options.resolved(profile, kind)

    def reset_session(self) -> None:
        """Forget the engine session (model, axis or slice changed); layers and objects stay."""
        self.close_session()

    def close_session(self) -> None:
        """Close the engine session (its prefetch thread and feature cache) and forget it."""
        if self.session is not None:
            self.session.close()
        self.session = None
        self.geometry = None
        self.results = {}
        self.pending = PendingCorrections()
        self.writer = None
        self.history.clear()

    def next_object_id(self) -> int:
        """A label id used neither by an object nor by any pixel of the Labels layer."""
        used = max((obj.obj_id for obj in self.objects), default=0)
        if self.labels is not None and self.labels.data.size:
            used = max(used, int(np.max(self.labels.data)))
        return used + 1

    def object_ids(self) -> list[int]:
        """Objects the engine session knows (prompted at least once)."""
        return [] if self.session is None else [int(i) for i in self.session.object_ids]

    def confirmed(self) -> dict[int, set[int]]:
        """Object id to the frames the user prompted or corrected."""
        if self.session is None:
            return {}
        return {
            int(obj): {int(f) for f in frames}
            for obj, frames in self.session.confirmed_frames.items()
        }

    def threshold(self) -> float:
        """The memory's confidence threshold (the session's gate once there is one)."""
        if self.session is None:
            return self.options.gate
        return self.session.options.gate

    def num_frames(self) -> int:
        if self.session is not None:
            return int(self.session.num_frames)
        if self.frame_axis is None:
            return 1
        return int(self.image.data.shape[self.frame_axis])

    def track(self, obj_id: int) -> ConfidenceTrack:
        """What the confidence strip shows for ``obj_id``."""
        confidence, in_memory = {}, {}
        for frame, result in self.results.items():
            if obj_id in result.iou:
                confidence[frame] = result.confidence[obj_id]
                in_memory[frame] = bool(result.in_memory.get(obj_id, False))
        return ConfidenceTrack(
            num_frames=self.num_frames(),
            confidence=confidence,
            in_memory=in_memory,
            confirmed=self.confirmed().get(obj_id, set()),
            threshold=self.threshold(),
        )
