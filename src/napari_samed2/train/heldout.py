"""Held-out Dice of a model on a label set's held-out objects, through the engine.

Each held-out object is prompted once, as a user would (its stored prompts on the first frame
that has them, else one click on its most interior pixel where it is largest), propagated both
ways through its source's frames by a `PropagationSession`, and scored with the volume Dice
over the frames where its mask is known (absent frames count: a mask there is a false
positive). The score is the mean over objects.
"""

from __future__ import annotations

import numpy as np

from ..engine import PropagationSession, SessionSettings
from .labelset_data import LabelSetData, SourceObject
from .metrics import dice
from .prompts import centre_click


class HeldOutDice:
    """Scores a model on the held-out objects of ``data``.

    Parameters
    ----------
    data : LabelSetData
        The label set, read and split.
    keep_features : bool
        Keep each source's session (and the frame features it cached) between calls: right
        while the image encoder is frozen, so features do not change as the model learns.
    """

    def __init__(self, data: LabelSetData, keep_features: bool = False):
        self.data = data
        self.keep_features = keep_features
        self._sessions: dict[int, PropagationSession] = {}

    def __call__(self, model) -> float:
        """Mean held-out Dice of ``model`` (a `LoadedModel`); NaN without held-out objects."""
        scores = self.scores(model)
        return float(np.mean(list(scores.values()))) if scores else float("nan")

    def scores(self, model) -> dict[tuple[int, int], float]:
        """``(source index, object id) -> Dice`` of every held-out object."""
        by_source: dict[int, list[SourceObject]] = {}
        for index in self.data.heldout:
            obj = self.data.objects[index]
            by_source.setdefault(obj.source, []).append(obj)
        scores = {}
        for source, objects in by_source.items():
            session = self._session(model, source)
            for obj in objects:
                scores[(source, obj.obj_id)] = self._score(session, obj)
            if not self.keep_features:
                session.close()
        return scores

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()

    def _session(self, model, source: int) -> PropagationSession:
        frames = self.data.sources[source]
        if self.keep_features and source in self._sessions:
            return self._sessions[source]
        # no disk cache: the encoder's weights may be learning, and keep_features already
        # keeps the features of a frozen one
        session = PropagationSession(
            model, frames.images, axis=0, rgb=frames.rgb,
            settings=SessionSettings(disk_cache_bytes=0),
        )  # fmt: skip
        if self.keep_features:
            self._sessions[source] = session
        return session

    def _score(self, session: PropagationSession, obj: SourceObject) -> float:
        frames = self.data.sources[obj.source]
        truth = frames.labels[obj.known] == obj.obj_id
        session.reset(bank=True)
        _prompt(session, frames, obj)
        if session.num_frames > 1:
            for _ in session.propagate(direction="both"):
                pass
        predicted = np.zeros_like(truth)
        for row, position in enumerate(obj.known):
            result = session.results.get(position)
            if result is not None and obj.obj_id in result.masks:
                predicted[row] = result.masks[obj.obj_id]
        return dice(predicted, truth)


def _prompt(session: PropagationSession, frames, obj: SourceObject) -> None:
    """The user's first prompt for ``obj``: stored prompts where the entries have them, else a
    click on its most interior pixel on the frame where it is largest."""
    for position in obj.present:
        stored = frames.prompts[position].get(obj.obj_id)
        if not stored or not (stored.get("points") or stored.get("box") is not None):
            continue
        points = stored.get("points") or None
        labels = stored.get("labels") if points else None
        if stored.get("box") is not None:
            session.add_box(position, obj.obj_id, stored["box"], points, labels)
        else:
            session.add_points(position, obj.obj_id, points, labels)
        return
    areas = [(frames.labels[k] == obj.obj_id).sum() for k in obj.present]
    position = obj.present[int(np.argmax(areas))]
    x, y = centre_click(frames.labels[position] == obj.obj_id).coords[0]
    session.add_points(position, obj.obj_id, [[float(y), float(x)]], [1])
