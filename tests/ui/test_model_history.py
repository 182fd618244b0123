"""ModelHistory: engine steps follow a real napari Labels layer's undo and redo queues."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels

from napari_samed2.engine import PropagationSession
from napari_samed2.ui.model_history import ModelHistory


@pytest.fixture
def setup(tiny_model, small_volume):
    session = PropagationSession(tiny_model, small_volume, axis=0)
    layer = Labels(np.zeros(small_volume.shape, dtype=np.int32))
    return session, layer


def act(history, session, layer, frame: int, label: int = 1, kind: str = "segment"):
    """An engine action on ``frame`` that writes one pixel of labels (one undo step)."""
    before = session.snapshot()
    session.add_points(frame, label, [[20, 30]], [1])
    layer.data_setitem((np.array([frame]), np.array([frame]), np.array([label])), label)
    history.record(kind, session, layer, before, session.snapshot())


def test_undo_redo_and_a_new_edit_after_an_undo(setup):
    session, layer = setup
    history = ModelHistory()
    act(history, session, layer, 1)
    act(history, session, layer, 5)
    assert session.confirmed_frames == {1: [1, 5]}

    layer.undo()
    change = history.sync(session, layer)
    assert [s.kind for s in change.undone] == ["segment"] and session.confirmed_frames == {1: [1]}
    layer.redo()
    assert [len(history.sync(session, layer).redone)] == [1]
    assert session.confirmed_frames == {1: [1, 5]}

    # undo, then paint before any sync: the undone step is gone from napari's redo queue
    layer.undo()
    layer.data_setitem((np.array([0]), np.array([0]), np.array([0])), 7)
    history.sync(session, layer)
    assert session.confirmed_frames == {1: [1]}
    assert [s.kind for s in history.steps] == ["segment"]
    layer.undo()  # the paint
    layer.undo()  # the first action
    history.sync(session, layer)
    assert session.object_ids == []


def test_an_action_that_wrote_no_label_is_undone_with_the_step_before(setup):
    session, layer = setup
    history = ModelHistory()
    act(history, session, layer, 2)
    before = session.snapshot()
    session.add_points(6, 1, [[20, 30]], [1])  # wrote nothing: paired with the last step
    history.record("segment", session, layer, before, session.snapshot())
    layer.undo()
    change = history.sync(session, layer)
    assert len(change.undone) == 2 and session.object_ids == []
    layer.redo()
    history.sync(session, layer)
    assert session.confirmed_frames == {1: [2, 6]}


def test_an_undo_beyond_the_kept_steps_is_reported(setup):
    session, layer = setup
    history = ModelHistory(limit=2)
    for frame in (1, 2, 3):
        act(history, session, layer, frame)
    assert len(history.steps) == 2
    layer.undo()
    layer.undo()
    change = history.sync(session, layer)
    assert not change.beyond and session.confirmed_frames == {1: [1]}
    layer.undo()  # the first action: its engine state was not kept
    change = history.sync(session, layer)
    assert change.beyond
    assert session.confirmed_frames == {1: [1]}, "the model keeps what it cannot undo"


def test_another_session_or_layer_makes_the_history_start_over(setup, tiny_model, small_volume):
    session, layer = setup
    history = ModelHistory()
    act(history, session, layer, 1)
    other = PropagationSession(tiny_model, small_volume, axis=0)
    layer.undo()
    assert not history.sync(other, layer)
    assert history.steps == [] and session.confirmed_frames == {1: [1]}
