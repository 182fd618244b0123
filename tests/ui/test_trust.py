"""The widget keeps the model in step with the user (issue 11, "Trust"), in a real viewer.

- Undo (Ctrl-Z on the Labels layer) of a run or of an accepted correction takes the engine
  session back too, and redo brings it back.
- Every control that changes the running session is disabled until the run ends.
- Removing the image layer during a run never waits for the worker.
- The widget's shortcuts are unbound when it closes; another plugin's binding wins.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from napari.layers import Labels
from napari.utils.key_bindings import coerce_keybinding
from napari.utils.notifications import notification_manager

from napari_samed2.engine import PropagationSession, SessionOptions
from napari_samed2.ui import SHORTCUTS, SAMed2Widget
from napari_samed2.ui.runner import Call

from .test_widget import RUN_TIMEOUT_MS, place_point, run

pytestmark = pytest.mark.gui


def ctrl_z(labels: Labels) -> None:
    """Press Ctrl-Z on the Labels layer (napari's own binding)."""
    Labels.class_keymap[coerce_keybinding("Control-Z")](labels)


def ctrl_shift_z(labels: Labels) -> None:
    Labels.class_keymap[coerce_keybinding("Control-Shift-Z")](labels)


def fresh_session(model, data, gate: float = 0.0) -> PropagationSession:
    """A new session set up as the widget sets up its own for a 3-D stack."""
    options = SessionOptions(memory="selective", gate=gate).resolved(model.profile, "Z")
    return PropagationSession(model, data, axis=0, options=options)


def masks_of(session, frames, obj_id: int = 1) -> dict[int, np.ndarray]:
    return {f: session.results[f].masks[obj_id].copy() for f in frames}


def confidences_of(session, frames, obj_id: int = 1) -> dict[int, float]:
    # with random weights the masks hardly depend on the memory; the predicted IoU does
    return {f: session.results[f].iou[obj_id] for f in frames}


@pytest.fixture
def annotator(make_napari_viewer, tiny_model, small_volume, qtbot):
    viewer = make_napari_viewer()
    image = viewer.add_image(small_volume, name="volume")
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_model)
    widget.add_object()
    # every propagated frame enters the memory: an undone run's memories would steer the next
    widget.set_memory_mode("selective")
    widget.set_gate_threshold(0.0)
    return viewer, image, widget


# -- undo reaches the model ---------------------------------------------------------------------


@pytest.mark.parametrize("labels_visible", [True, False], ids=["redrawn", "hidden"])
def test_propagate_undo_propagate_equals_a_fresh_session(
    annotator, tiny_model, small_volume, qtbot, labels_visible
):
    _viewer, _image, widget = annotator
    place_point(widget, 2, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    after_segment = widget.state.labels.data.copy()
    run(qtbot, widget, widget.propagate_forward)
    session, labels = widget.state.session, widget.state.labels
    assert sorted(session.results) == list(range(2, 10))
    labels.visible = labels_visible  # hidden: the undo fires no event, the next action syncs
    ctrl_z(labels)  # the propagation
    np.testing.assert_array_equal(labels.data, after_segment)
    if labels_visible:
        assert sorted(session.results) == [2], "the model follows the undo at once"
        assert sorted(widget.confidence.track.confidence) == [2]
    else:
        assert sorted(session.results) == list(range(2, 10)), "no event, no sync yet"

    widget.go_to_frame(2)
    run(qtbot, widget, widget.propagate_backward)  # frames 2, 1, 0
    assert widget.state.session is session

    fresh = fresh_session(tiny_model, small_volume)
    fresh.add_points(2, 1, [[20, 30]], [1])
    list(fresh.propagate("backward", start=2))
    got, expected = masks_of(session, [0, 1, 2]), masks_of(fresh, [0, 1, 2])
    for frame in (0, 1, 2):
        np.testing.assert_array_equal(got[frame], expected[frame], err_msg=f"frame {frame}")
    assert confidences_of(session, [0, 1, 2]) == confidences_of(fresh, [0, 1, 2])
    assert sorted(session.results) == [0, 1, 2]
    np.testing.assert_array_equal(labels.data[3:], after_segment[3:])


def test_undo_of_an_accepted_correction_leaves_memory_and_bank_and_redo_restores_it(
    annotator, tiny_model, small_volume, qtbot
):
    _viewer, _image, widget = annotator
    place_point(widget, 0, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    run(qtbot, widget, widget.propagate_forward)
    session, labels = widget.state.session, widget.state.labels
    bank_before = [entry.uid for entry in session.bank.entries]

    widget.go_to_frame(4)
    widget.direction_combo.setCurrentText("forward")
    labels.selected_label = 1
    labels.brush_size = 9
    labels.paint((4, 32, 32), 1)
    assert widget.state.pending.frames == {4: {1}}
    run(qtbot, widget, widget.accept_correction)
    assert session.confirmed_frames == {1: [0, 4]}
    corrections = [e for e in session.bank.entries if e.origin == "correction"]
    assert [(e.frame, e.obj_id) for e in corrections] == [(4, 1)]
    with_fix = masks_of(session, range(5, 10))

    ctrl_z(labels)  # the accepted correction's run
    assert session.confirmed_frames == {1: [0]}
    assert [entry.uid for entry in session.bank.entries] == bank_before
    assert widget.state.pending.frames == {4: {1}}, "the painted frame awaits Accept again"
    assert widget.accept_button.isEnabled()
    assert labels.data[4][32, 32] == 1, "the paint stroke itself is the step before"

    ctrl_shift_z(labels)  # redo: the correction is back in memory and bank
    assert session.confirmed_frames == {1: [0, 4]}
    assert [e.uid for e in session.bank.entries if e.origin == "correction"] == [corrections[0].uid]
    assert widget.state.pending.frames == {}
    np.testing.assert_array_equal(masks_of(session, range(5, 10))[9], with_fix[9])

    ctrl_z(labels)
    widget.go_to_frame(4)
    run(qtbot, widget, widget.propagate_forward)  # from frame 4, without the correction
    fresh = fresh_session(tiny_model, small_volume)
    fresh.add_points(0, 1, [[20, 30]], [1])
    list(fresh.propagate("forward"))
    list(fresh.propagate("forward", start=4))
    got, expected = masks_of(session, range(4, 10)), masks_of(fresh, range(4, 10))
    for frame in range(4, 10):
        np.testing.assert_array_equal(got[frame], expected[frame], err_msg=f"frame {frame}")
    assert confidences_of(session, range(4, 10)) == confidences_of(fresh, range(4, 10))


def test_undo_of_an_object_deletion_brings_the_object_back_to_the_model(annotator, qtbot):
    _viewer, _image, widget = annotator
    place_point(widget, 3, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    session, labels = widget.state.session, widget.state.labels
    widget.delete_object(1)
    assert session.object_ids == [] and widget.object_list.ids() == []
    ctrl_z(labels)
    assert session.object_ids == [1] and session.confirmed_frames == {1: [3]}
    assert widget.object_list.ids() == [1]
    np.testing.assert_array_equal(labels.data[3] == 1, session.results[3].masks[1])


# -- one writer: controls locked during a run -----------------------------------------------------


def session_controls(widget: SAMed2Widget) -> dict[str, object]:
    panel = widget.objects_panel
    return {
        "segment": widget.segment_button,
        "forward": widget.forward_button,
        "backward": widget.backward_button,
        "both": widget.both_button,
        "accept": widget.accept_button,
        "objects": widget.object_list,
        "+ point": panel.positive_button,
        "- point": panel.negative_button,
        "box": panel.box_button,
        "memory": widget.memory_combo,
        "gate": widget.gate_spin,
        "zoom": widget.zoom_check,
        "connected": widget.connected_check,
        "motion": widget.motion_check,
        "ends once": widget.ends_once_check,
        "model": widget.model_picker,
        "image": widget.image_combo,
        "axis": widget.axis_combo,
        "labels": widget.labels_combo,
    }


@pytest.mark.parametrize("ending", ["finished", "stopped", "errored"])
def test_controls_that_change_the_session_are_disabled_during_a_run(annotator, qtbot, ending):
    _viewer, _image, widget = annotator
    place_point(widget, 0, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    session = widget.state.session
    release = threading.Event()

    def held_then(result):
        def step():
            release.wait(RUN_TIMEOUT_MS / 1000)
            if ending == "errored":
                raise RuntimeError("the step failed")
            return result

        return step

    steps = [Call(held_then(session.results[0]))]
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        widget._start_run("test", widget.state, steps)
        enabled = [name for name, w in session_controls(widget).items() if w.isEnabled()]
        assert enabled == [], f"enabled during the run: {enabled}"
        assert widget.stop_button.isEnabled()
        before = session.options
        widget.set_connected(not before.connected)  # nor can a script (or a stale signal)
        widget.set_motion(not before.motion)
        widget.set_gate_threshold(0.9)
        assert session.options == before and session.options.gate == 0.0
        labels = widget.state.labels
        before = labels.data.copy()
        ctrl_z_during_run = labels.keymap[coerce_keybinding("Control-Z")]  # the layer's own
        ctrl_z_during_run(labels)
        np.testing.assert_array_equal(labels.data, before)  # the segment was not undone
        if ending == "stopped":
            widget.stop()
        release.set()
    assert (blocker.args[0]["error"] is not None) == (ending == "errored")
    disabled = [
        name
        for name, w in session_controls(widget).items()
        if not w.isEnabled() and name not in ("accept", "axis")  # nothing to accept; a 3-D stack
    ]
    assert disabled == [], f"still disabled after the run: {disabled}"
    assert not widget.stop_button.isEnabled()
    assert coerce_keybinding("Control-Z") not in labels.keymap, "napari's Ctrl-Z is back"


# -- removing the image during a run -------------------------------------------------------------


def test_removing_the_image_mid_run_does_not_wait_for_the_worker(annotator, qtbot):
    viewer, image, widget = annotator
    place_point(widget, 0, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    state, session = widget.state, widget.state.session
    entered, release = threading.Event(), threading.Event()

    def held_step():
        entered.set()
        release.wait(RUN_TIMEOUT_MS / 1000)  # the worker sits in the engine until released
        return session.results[0]

    notification_manager.records.clear()
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        widget._start_run("test", state, [Call(held_step)])
        engine_run = widget.run
        assert entered.wait(RUN_TIMEOUT_MS / 1000)
        viewer.layers.remove(image)  # returns while the worker is still in the engine
        assert not engine_run.ended.is_set()
        assert engine_run.stop_requested.is_set()
        assert widget.states == {} and widget.state is None
        assert state.session is session, "the session is closed only once the worker left it"
        release.set()
    assert engine_run.ended.is_set()
    assert blocker.args[0]["stopped"] and blocker.args[0]["error"] is None
    assert state.session is None, "the state is dropped when the worker ends"
    assert widget.run is None
    assert not [r for r in notification_manager.records if "rror" in str(r.message)]


# -- shortcuts unbound when the widget closes ----------------------------------------------------


@pytest.mark.parametrize("how", ["dock x", "close"])
def test_shortcuts_are_unbound_when_the_widget_closes(annotator, qtbot, how):
    viewer, _image, widget = annotator
    widget.start_points()
    points = widget.state.points
    toggle = coerce_keybinding("t")
    assert toggle in points.keymap
    for key in SHORTCUTS:
        assert coerce_keybinding(key) in viewer.keymap
    mine = viewer.keymap[coerce_keybinding("Shift-W")]

    def other_plugin(_viewer=None):
        """another plugin's Shift-S"""

    viewer.bind_key("Shift-S", other_plugin, overwrite=True)  # bound after us: theirs wins
    if how == "dock x":
        viewer.window.remove_dock_widget(widget)  # what napari's dock "x" button does
    else:
        widget.close()
    assert viewer.keymap.get(coerce_keybinding("Shift-S")) is other_plugin
    for key in SHORTCUTS:
        if key != "Shift-S":
            assert coerce_keybinding(key) not in viewer.keymap, key
    assert toggle not in points.keymap
    assert mine not in viewer.keymap.values() and mine not in points.keymap.values()


def test_a_key_bound_by_another_plugin_first_is_left_alone(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()

    def other_plugin(_viewer=None):
        """another plugin's Shift-D"""

    viewer.bind_key("Shift-D", other_plugin)
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    assert viewer.keymap[coerce_keybinding("Shift-D")] is other_plugin
    assert viewer.keymap[coerce_keybinding("Shift-F")].__name__ == "propagate_forward"
    viewer.window.remove_dock_widget(widget)
    assert viewer.keymap[coerce_keybinding("Shift-D")] is other_plugin
    assert coerce_keybinding("Shift-F") not in viewer.keymap


def test_an_object_id_the_labels_layer_cannot_hold_is_refused(
    make_napari_viewer, tiny_model, small_volume, qtbot
):
    viewer = make_napari_viewer()
    viewer.add_image(small_volume, name="volume")
    labels = np.zeros(small_volume.shape, dtype=np.uint8)
    labels[0, 0, 0] = 255  # the next free id, 256, does not fit uint8
    layer = viewer.add_labels(labels, name="uint8 labels")
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_model)
    widget.use_labels_layer(layer)
    before = widget.object_list.ids()
    with notification_manager:
        assert widget.add_object() is None
    assert widget.object_list.ids() == before
    messages = [str(n.message) for n in notification_manager.records]
    assert any("256" in m and "uint8" in m and "255" in m for m in messages), messages
