"""Keep the engine session in step with the Labels layer's undo history.

Every run (segment, propagate, accepted correction) and every object deletion is an *engine
step*: the session's state before and after it (`PropagationSession.snapshot`) is paired with
the undo step it left on the Labels layer. When the user presses Ctrl-Z / Ctrl-Shift-Z,
napari moves that undo step between its undo and redo queues; `ModelHistory.sync` notices
where each paired step now lies and restores the session state that matches, so a run the
user threw away no longer steers the next one.

How napari 0.9 records Labels history (``Labels._undo_history`` / ``_redo_history``, deques
of items, each a list of atoms): an undo moves an item to the redo queue as a *new* list of
the *same* atom objects, so a step is recognised by the identity of its item's first atom.
Undo and redo fire no event of their own (only a redraw), so the widget calls `sync` before
every engine action and on the layer's ``set_data`` events.

A step whose run changed no label has no undo step of its own: it is paired with the undo step
that was last when it ended (undoing that one undoes both). A step that left no undo step at
all (an empty history) cannot be undone and is not recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from napari.layers import Labels

logger = logging.getLogger(__name__)

ENGINE_UNDO_STEPS = 16  # engine states kept: each may hold a run's worth of replaced memories

APPLIED, UNDONE, DISCARDED = "applied", "undone", "discarded"


@dataclass(eq=False)
class EngineStep:
    """One engine-changing action and the Labels undo step it is paired with.

    Attributes
    ----------
    kind : str
        What the action was ("segment", "propagate forward", "correction", "delete object").
    before, after : SessionSnapshot
        The session's state before and after the action.
    marker : object
        The first atom of the paired Labels history item (kept alive so its id stays unique).
    accepted : tuple of (frame, obj_id)
        Corrections the action handed to the engine (they become pending again when undone).
    status : str
        ``"applied"`` or ``"undone"`` as last seen.
    """

    kind: str
    before: object
    after: object
    marker: object
    accepted: tuple[tuple[int, int], ...] = ()
    status: str = APPLIED


@dataclass
class SyncChange:
    """What a `ModelHistory.sync` did to the session."""

    undone: list[EngineStep] = field(default_factory=list)
    redone: list[EngineStep] = field(default_factory=list)
    beyond: bool = False  # an undo went further back than the kept engine steps

    def __bool__(self) -> bool:
        return bool(self.undone or self.redone or self.beyond)


class ModelHistory:
    """The engine steps of one (session, Labels layer) pair, oldest first.

    Parameters
    ----------
    limit : int
        Engine steps kept. Older steps can no longer be undone in the model (their snapshots
        would keep every memory a later run replaced); undoing them on the layer is reported
        as ``SyncChange.beyond``.
    """

    def __init__(self, limit: int = ENGINE_UNDO_STEPS) -> None:
        self.limit = int(limit)
        self.steps: list[EngineStep] = []
        self._session = None
        self._layer: Labels | None = None
        self._history_queue = None  # the layer's undo deque, to notice napari resetting it
        self._current = None  # the snapshot the session was last put in (or left in)
        self._forgotten: list[object] = []  # markers of steps dropped for the limit
        self._seen: tuple | None = None  # the layer's history as the last sync saw it

    def clear(self) -> None:
        """Forget every step (a new session, another Labels layer)."""
        self.steps.clear()
        self._forgotten.clear()
        self._session = self._layer = self._history_queue = self._current = self._seen = None

    def record(self, kind, session, layer: Labels, before, after, accepted=()) -> None:
        """Pair the action that took ``session`` from ``before`` to ``after`` with the
        Labels layer's latest undo step (call right after the action wrote its labels)."""
        if session is not self._session or layer is not self._layer:
            self.clear()
            self._session, self._layer = session, layer
        undo_queue = layer._undo_history
        self._history_queue = undo_queue
        self._current = after
        # steps undone before this action cannot come back in the model: the action was
        # built on the state without them (its labels cleared napari's redo queue too)
        self.steps = [step for step in self.steps if step.status == APPLIED]
        if not undo_queue or not undo_queue[-1]:
            # nothing on the layer to undo: this state can never be taken back
            self.steps.clear()
            return
        self.steps.append(EngineStep(kind, before, after, undo_queue[-1][0], tuple(accepted)))
        while len(self.steps) > self.limit:
            self._forgotten.append(self.steps.pop(0).marker)
        del self._forgotten[: -napari_history_limit(layer)]

    def sync(self, session, layer: Labels | None, force: bool = True) -> SyncChange:
        """Restore the session state that matches the layer's undo history; what changed.

        ``force=False`` returns at once when the layer's history looks as it did at the last
        sync (its length and last items): for calls on every redraw.
        """
        change = SyncChange()
        if not self.steps and not self._forgotten:
            return change
        if session is not self._session or layer is not self._layer:
            self.clear()  # a new session or another layer: nothing recorded applies
            return change
        undo_queue, redo_queue = layer._undo_history, layer._redo_history
        if undo_queue is not self._history_queue:
            logger.debug("the Labels layer's history was reset: the model keeps its state")
            self.clear()
            return change
        seen = (len(undo_queue), len(redo_queue), _last_atom(undo_queue), _last_atom(redo_queue))
        if not force and seen == self._seen:
            return change
        self._seen = seen
        undo_atoms = {id(atom) for item in undo_queue for atom in item}
        redo_atoms = {id(atom) for item in redo_queue for atom in item}
        change.beyond = any(id(marker) in redo_atoms for marker in self._forgotten)
        queue_full = len(undo_queue) == undo_queue.maxlen
        for step in self.steps:
            status = _status(step, undo_atoms, redo_atoms, queue_full)
            if status == APPLIED and step.status == UNDONE:
                change.redone.append(step)
            elif status != APPLIED and step.status == APPLIED:
                change.undone.append(step)
            step.status = status
        self.steps = [step for step in self.steps if step.status != DISCARDED]
        target = self._target()
        if target is not None and target is not self._current:
            session.restore(target)
            self._current = target
            logger.info(
                "model state follows the Labels layer: undid %s, redid %s",
                [s.kind for s in change.undone],
                [s.kind for s in change.redone],
            )
        return change

    def _target(self):
        applied = [index for index, step in enumerate(self.steps) if step.status == APPLIED]
        if not self.steps:
            return None
        if not applied:
            return self.steps[0].before
        last = applied[-1]
        if last + 1 < len(self.steps):
            return self.steps[last + 1].before
        return self.steps[last].after


def _status(step: EngineStep, undo_atoms: set[int], redo_atoms: set[int], queue_full: bool):
    marker = id(step.marker)
    if marker in undo_atoms:
        return APPLIED
    if marker in redo_atoms:
        return UNDONE
    # gone from both queues: undone and then overwritten by a new edit (napari clears the
    # redo queue), or pushed out of a full undo queue (still applied, for good)
    if step.status == APPLIED and queue_full:
        return APPLIED
    return DISCARDED


def _last_atom(queue) -> int | None:
    # an undo or redo puts a new list of the same atoms on the other queue: compare atoms
    return id(queue[-1][0]) if queue and queue[-1] else None


def napari_history_limit(layer: Labels) -> int:
    """How many undo steps napari keeps for ``layer``."""
    return layer._undo_history.maxlen or 100
