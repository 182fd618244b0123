"""The annotator driven as a user would, in a real napari viewer (Xvfb), with a CI-sized net.

Random weights give arbitrary masks, so these tests check plumbing exactly: the Labels layer
equals what the engine returned, merged so that other labels stay untouched; confirmed frames
are never overwritten; one run is one undo step; Stop leaves later frames as they were.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from napari.utils.notifications import notification_manager
from qtpy.QtCore import QTimer

from napari_samed2.labelset import merge_object, merge_objects
from napari_samed2.ui import SAMed2Widget

pytestmark = pytest.mark.gui
RUN_TIMEOUT_MS = 60_000


def run(qtbot, widget: SAMed2Widget, action, *args) -> dict:
    """Call a widget action and wait for its engine run to end; returns the run summary."""
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        action(*args)
    summary = blocker.args[0]
    assert summary["error"] is None, summary["error"]
    return summary


def expected_labels(before: np.ndarray, session, obj_id: int, frames) -> np.ndarray:
    """``before`` with the engine's masks of ``obj_id`` merged into ``frames``."""
    expected = before.copy()
    for frame in frames:
        expected[frame] = merge_object(before[frame], obj_id, session.results[frame].masks[obj_id])
    return expected


@pytest.fixture
def annotator(make_napari_viewer, tiny_model, small_volume, qtbot):
    viewer = make_napari_viewer()
    image = viewer.add_image(small_volume, name="volume")
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_model)
    return viewer, image, widget


def place_point(widget: SAMed2Widget, frame: int, row: float, col: float) -> None:
    widget.go_to_frame(frame)
    widget.start_points()
    widget.state.points.add([frame, row, col])


def error_messages() -> list[str]:
    return [str(record.message) for record in notification_manager.records]


def test_user_story(annotator, qtbot):
    viewer, image, widget = annotator
    # an existing Labels layer with a label the user made by hand (id 9): must stay untouched
    manual = np.zeros(image.data.shape, dtype=np.int32)
    manual[:, 40:60, 2:20] = 9
    labels = viewer.add_labels(manual.copy(), name="manual")
    widget.use_labels_layer(labels)
    assert widget.object_list.ids() == [9]
    obj = widget.add_object("nucleus")
    assert obj == 10 and widget.object_list.current_id() == 10
    assert widget.state.labels is labels

    # add a point, segment the frame: the frame holds exactly the engine's mask
    place_point(widget, 4, 20, 30)
    assert widget.current_frame() == 4
    untouched = labels.data.copy()
    run(qtbot, widget, widget.segment_frame)
    session = widget.state.session
    assert session.confirmed_frames == {10: [4]}
    after_segment = expected_labels(untouched, session, 10, [4])
    np.testing.assert_array_equal(labels.data, after_segment)

    # propagate both ways from the prompted frame: every frame follows the engine
    summary = run(qtbot, widget, widget.propagate_both)
    assert summary["frames"] == session.num_frames == 10
    others = [f for f in range(10) if f != 4]
    after_propagation = expected_labels(after_segment, session, 10, others)
    np.testing.assert_array_equal(labels.data, after_propagation)
    assert np.array_equal(labels.data == 9, manual == 9), "label 9 must stay untouched"
    # the confidence strip shows the selected object's per-frame confidence
    track = widget.confidence.track
    assert track.num_frames == 10 and sorted(track.confidence) == list(range(10))
    assert track.confidence[7] == pytest.approx(session.results[7].confidence[10])

    # the whole run is one undo step (Ctrl-Z, napari's Labels binding), redo brings it back
    from napari.layers import Labels
    from napari.utils.key_bindings import coerce_keybinding

    Labels.class_keymap[coerce_keybinding("Control-Z")](labels)
    np.testing.assert_array_equal(labels.data, after_segment)
    Labels.class_keymap[coerce_keybinding("Control-Shift-Z")](labels)
    np.testing.assert_array_equal(labels.data, after_propagation)

    # correct frame 7: paint a disk, accept, re-propagate forward up to the end
    widget.go_to_frame(7)
    widget.direction_combo.setCurrentText("forward")
    bank_before = len(session.bank)
    iou_before = {f: session.results[f].iou[10] for f in (8, 9)}
    labels.selected_label = 10
    labels.brush_size = 9
    labels.paint((7, 32, 32), 10)
    assert widget.state.pending.frames == {7: {10}}
    assert widget.accept_button.isEnabled()
    painted = labels.data[7].copy()
    accepted: list = []
    widget.accepted.connect(accepted.extend)
    before_accept = labels.data.copy()
    run(qtbot, widget, widget.accept_correction)
    np.testing.assert_array_equal(labels.data[7], painted)  # the user's mask is kept as is
    np.testing.assert_array_equal(labels.data[:7], before_accept[:7])  # forward only
    assert 7 in session.confirmed_frames[10]
    assert len(session.bank) > bank_before, "the correction must enter the long-term bank"
    np.testing.assert_array_equal(labels.data, expected_labels(before_accept, session, 10, [8, 9]))
    assert {f: session.results[f].iou[10] for f in (8, 9)} != iou_before, "frames 8-9 re-ran"
    assert [(a.frame, a.obj_id) for a in accepted] == [(7, 10)]
    np.testing.assert_array_equal(accepted[0].mask, painted == 10)
    assert not widget.accept_button.isEnabled()

    # next weak frame: jumps to the next unconfirmed frame under the memory threshold
    session.set_options(gate=0.99)  # random weights: make every frame weak
    widget._refresh_confidence()
    weak = widget.confidence.track.weak_frames()
    assert weak == [f for f in range(10) if f not in (4, 7)]
    widget.go_to_frame(5)
    widget.next_weak_frame()
    assert widget.current_frame() == 6
    widget.go_to_frame(9)
    widget.next_weak_frame()
    assert widget.current_frame() == 0  # wraps around

    # switch image layers and come back: objects, labels layer and session are kept
    other = viewer.add_image(np.zeros((5, 32, 32), dtype=np.uint8), name="other")
    widget.select_image(other)
    assert widget.state.image is other and widget.object_list.ids() == []
    widget.select_image(image)
    assert widget.state.image is image and widget.object_list.ids() == [9, 10]
    assert widget.state.session is session and widget.state.labels is labels

    # delete the object: its pixels go (one undo step), label 9 stays, the engine forgets it
    before_delete = labels.data.copy()
    widget.object_list.select(10)
    widget.delete_selected_object()
    assert not np.any(labels.data == 10)
    assert np.array_equal(labels.data == 9, manual == 9)
    assert 10 not in session.object_ids and widget.object_list.ids() == [9]
    labels.undo()
    np.testing.assert_array_equal(labels.data, before_delete)


def test_stop_leaves_later_frames_unchanged(annotator, qtbot):
    _viewer, image, widget = annotator
    widget.add_object()
    place_point(widget, 0, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    labels = widget.state.labels
    before = labels.data.copy()
    done: list[int] = []

    bar: list[tuple[int, int]] = []

    def stop_after_two(frame: int) -> None:
        done.append(frame)
        bar.append((widget._run_progress.n, widget._run_progress.total))
        if len(done) == 2:
            widget.stop()

    widget.frame_done.connect(stop_after_two)
    summary = run(qtbot, widget, widget.propagate_forward)
    assert summary["stopped"]
    # Stop ends within one frame: at most one frame arrives after the one that asked
    assert 2 <= len(done) <= 3
    assert done == list(range(len(done)))
    # napari's progress bar counts frames done out of the run's total
    assert bar == [(n, 10) for n in range(len(done))]  # counted after each frame's handler
    untouched = [f for f in range(image.data.shape[0]) if f not in done]
    np.testing.assert_array_equal(labels.data[untouched], before[untouched])
    session = widget.state.session
    written = [f for f in done if f != 0]
    np.testing.assert_array_equal(labels.data, expected_labels(before, session, 1, written))
    # the session stays usable: propagation resumes and completes
    widget.frame_done.disconnect(stop_after_two)
    widget.go_to_frame(done[-1])
    summary = run(qtbot, widget, widget.propagate_forward)
    assert not summary["stopped"] and summary["frames"] == 10 - done[-1]


def test_gui_stays_responsive_while_propagating(annotator, qtbot):
    _viewer, _image, widget = annotator
    widget.add_object()
    place_point(widget, 5, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    try:
        last[0] = time.perf_counter()
        run(qtbot, widget, widget.propagate_both)
    finally:
        timer.stop()
    longest = max(gaps)
    print(f"\nheartbeat during propagation: {len(gaps)} ticks, longest gap {longest * 1000:.0f} ms")
    assert longest < 1.0, f"the GUI froze for {longest:.2f} s"


def test_closing_the_viewer_mid_run_ends_the_worker(make_napari_viewer, tiny_model, qtbot):
    from napari_samed2.synthetic import nuclei_volume

    viewer = make_napari_viewer()
    viewer.add_image(nuclei_volume(shape=(24, 64, 64), seed=2).image, name="long")
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_model)
    widget.add_object()
    place_point(widget, 0, 30, 30)
    run(qtbot, widget, widget.segment_frame)
    widget.propagate_forward()
    engine_run = widget.run
    qtbot.waitUntil(lambda: engine_run.frames_done >= 1, timeout=RUN_TIMEOUT_MS)
    viewer.close()
    assert engine_run.ended.wait(5.0), "the worker must leave the engine when the viewer closes"
    assert engine_run.stop_requested.is_set()
    assert engine_run.frames_done < 24


def test_errors_are_notifications_and_the_widget_stays_usable(
    make_napari_viewer, tiny_model, small_volume, tmp_path, qtbot
):
    viewer = make_napari_viewer()
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.segment_frame()  # no image at all
    assert "Open or choose an image layer first." in error_messages()[-1]
    viewer.add_image(small_volume, name="volume")
    widget.add_object()
    widget.segment_frame()  # no model
    assert "Load a model first" in error_messages()[-1]
    widget.set_model(tiny_model)
    widget.segment_frame()  # no prompt on this frame
    assert "place a point" in error_messages()[-1]
    widget.propagate_both()  # nothing prompted yet
    assert "Nothing to propagate" in error_messages()[-1]
    widget.accept_correction()  # nothing painted
    assert "No correction to accept" in error_messages()[-1]

    # a checkpoint file that would run code when unpickled is refused, with its name
    bad = tmp_path / "evil.pt"
    bad.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    widget.model_picker.add_checkpoint(bad)
    with qtbot.waitSignal(widget.model_picker.load_failed, timeout=RUN_TIMEOUT_MS) as blocker:
        widget.model_picker.load_selected()
    message = blocker.args[0]
    assert "evil.pt" in message and message.startswith("Loading the model failed")
    assert "could run code" in message and "Weights only load failed" not in message
    assert widget.model is tiny_model and widget.model_picker.load_button.isEnabled()

    # a good checkpoint loads in the worker and becomes the widget's model
    from napari_samed2.model import save_checkpoint

    good = save_checkpoint(
        tmp_path / "mine.safetensors",
        tiny_model.net,
        config=tiny_model.config,
        temporal_adapter=True,
        preprocessing=tiny_model.preprocessing,
        name="mine",
    )
    widget.model_picker.add_checkpoint(good)
    widget.model_picker.device_combo.setCurrentText("cpu")
    with qtbot.waitSignal(widget.model_picker.model_loaded, timeout=RUN_TIMEOUT_MS):
        widget.model_picker.load_selected()
    assert widget.model.name == "mine" and widget.model.source == good
    assert "mine + temporal adapter · 256 px · cpu" in widget.model_picker.status.text()

    # after all that, segmenting works
    place_point(widget, 3, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    assert widget.state.session.confirmed_frames == {1: [3]}


def test_2d_image_box_prompt_then_mask_prompt(make_napari_viewer, tiny_model, qtbot):
    from skimage import data, transform

    viewer = make_napari_viewer()
    cell = (transform.resize(data.cell(), (64, 64)) * 255).astype(np.uint8)
    viewer.add_image(cell, name="cell")
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_model)
    assert widget.axis_combo.currentText() == "single 2-D image"
    widget.add_object()
    widget.start_box()
    boxes = widget.state.boxes
    assert viewer.layers.selection.active is boxes and boxes.mode == "add_rectangle"
    boxes.add_rectangles(np.array([[10, 12], [40, 44]]))
    widget.start_points("negative")
    widget.state.points.add([20, 20])
    run(qtbot, widget, widget.segment_frame)
    session = widget.state.session
    labels = widget.state.labels
    assert labels.data.shape == (64, 64)
    np.testing.assert_array_equal(labels.data == 1, session.results[0].masks[1])
    # the box and the click went to the engine together, as one prompt
    from napari_samed2.engine import PropagationSession

    direct = PropagationSession(tiny_model, cell).add_box(
        0, 1, (10, 12, 40, 44), np.array([[20.0, 20.0]]), np.array([0])
    )
    np.testing.assert_array_equal(session.results[0].masks[1], direct.masks[1])
    assert session.results[0].iou[1] == pytest.approx(direct.iou[1])
    # the object list shows each object in its label colour
    swatch = widget.object_list.list.item(0).icon().pixmap(14, 14).toImage().pixelColor(7, 7)
    expected_rgb = np.round(np.asarray(labels.get_color(1))[:3] * 255)
    np.testing.assert_allclose([swatch.red(), swatch.green(), swatch.blue()], expected_rgb, atol=1)

    # a second object from a painted mask (no points, no box): the mask is the prompt
    second = widget.add_object()
    assert labels.selected_label == second == 2
    labels.data_setitem((np.array([50, 50, 51, 51]), np.array([5, 6, 5, 6])), 2)
    before = labels.data.copy()
    run(qtbot, widget, widget.segment_frame)
    assert session.confirmed_frames == {1: [0], 2: [0]}
    # the new object takes from object 1 the pixels the engine gave it; the layer then holds
    # exactly the engine's two disjoint masks
    expected = merge_objects(before, {2: session.results[0].masks[2]}, takes_from={1})
    np.testing.assert_array_equal(labels.data, expected)
    np.testing.assert_array_equal(labels.data == 1, session.results[0].masks[1])
    np.testing.assert_array_equal(labels.data == 2, session.results[0].masks[2])


def test_4d_stack_asks_for_the_axis_and_writes_one_slice(make_napari_viewer, tiny_model, qtbot):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    image = viewer.add_image(rng.integers(0, 255, (3, 4, 32, 32), dtype=np.uint8), name="tzyx")
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_model)
    assert "choose the axis to propagate along" in error_messages()[-1]
    assert widget.axis_combo.itemData(0) is None  # "choose the axis…"
    assert widget.axis_combo.isEnabled() and widget.axis_combo.count() == 3
    assert widget.state.frame_axis is None
    widget.add_object()
    widget.segment_frame()
    assert "Choose the frame axis" in error_messages()[-1]
    widget.axis_combo.setCurrentIndex(2)
    widget._on_axis_chosen(2)
    assert widget.state.frame_axis == 1
    viewer.dims.set_point(0, 2)  # hold t = 2, propagate along z
    place_point_4d = [2, 1, 16, 16]
    widget.go_to_frame(1)
    widget.start_points()
    widget.state.points.add(place_point_4d)
    run(qtbot, widget, widget.segment_frame)
    run(qtbot, widget, widget.propagate_both)
    labels = widget.state.labels
    session = widget.state.session
    assert labels.data.shape == image.data.shape and session.num_frames == 4
    for z in range(4):
        np.testing.assert_array_equal(labels.data[2, z] == 1, session.results[z].masks[1])
    assert not labels.data[:2].any(), "other time points must stay untouched"


def test_shortcuts_are_bound_on_the_viewer_and_t_toggles_the_point_sign(annotator, qtbot):
    from napari.utils.key_bindings import coerce_keybinding

    from napari_samed2.ui import SHORTCUTS

    viewer, _image, widget = annotator
    for key, (method, _text) in SHORTCUTS.items():
        assert viewer.keymap[coerce_keybinding(key)].__name__ == method
    widget.add_object()
    place_point(widget, 2, 20, 30)
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        viewer.keymap[coerce_keybinding("Shift-S")](viewer)
    assert widget.state.session.confirmed_frames == {1: [2]}
    points = widget.state.points
    assert points.feature_defaults["sign"][0] == "positive"
    points.keymap[coerce_keybinding("t")](points)
    assert points.feature_defaults["sign"][0] == "negative"
    points.add([2, 5, 5])
    assert list(points.features["sign"]) == ["positive", "negative"]


def test_rgb_image_segments_into_a_2d_labels_layer(make_napari_viewer, tiny_model, qtbot):
    viewer = make_napari_viewer()
    rgb = np.zeros((48, 48, 3), dtype=np.uint8)
    rgb[10:30, 12:34] = (200, 60, 60)
    image = viewer.add_image(rgb, name="rgb")
    assert image.rgb
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_model)
    widget.add_object()
    widget.start_points()
    widget.state.points.add([20, 22])
    run(qtbot, widget, widget.segment_frame)
    labels = widget.state.labels
    assert labels.data.shape == (48, 48)
    np.testing.assert_array_equal(labels.data == 1, widget.state.session.results[0].masks[1])


def test_deleting_the_image_mid_run_stops_the_run(annotator, qtbot):
    viewer, image, widget = annotator
    widget.add_object()
    place_point(widget, 0, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    session = widget.state.session
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        widget.propagate_forward()
        engine_run = widget.run
        qtbot.waitUntil(lambda: engine_run.frames_done >= 1, timeout=RUN_TIMEOUT_MS)
        viewer.layers.remove(image)
    assert blocker.args[0]["stopped"] and blocker.args[0]["error"] is None
    assert engine_run.ended.is_set() and engine_run.frames_done < 10
    assert widget.state is None and widget.run is None and widget.states == {}
    assert session.results, "the frames computed before the stop stay in the session"


def test_memory_mode_and_gate(make_napari_viewer, tiny_nano_model, small_volume, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(small_volume, name="volume")
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_nano_model)  # nano's profile: connected masks on by default
    widget.add_object()
    place_point(widget, 3, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    session = widget.state.session
    assert session.options.memory == "selective" and widget.gate_spin.isEnabled()
    # the gate acts on the live session and on the strip's threshold line
    widget.gate_spin.setValue(0.8)
    assert session.options.gate == pytest.approx(0.8)
    assert widget.confidence.track.threshold == pytest.approx(0.8)
    labels_before = widget.state.labels.data.copy()
    # stock SAM2 memory: a new session (labels kept), gate not applicable
    widget.memory_combo.setCurrentIndex(widget.memory_combo.findData("sam2"))
    widget.set_memory_mode("sam2")
    assert widget.state.session is None and not widget.gate_spin.isEnabled()
    np.testing.assert_array_equal(widget.state.labels.data, labels_before)
    run(qtbot, widget, widget.segment_frame)
    assert widget.state.session.options.memory == "sam2"
    assert widget.state.session.options.gate == pytest.approx(0.8)
    # temporal connectivity: on by default, live on the session, kept for the next one
    assert widget.connected_check.isChecked() and widget.state.session.options.connected
    widget.connected_check.setChecked(False)
    assert widget.state.session.options.connected is False
    widget.set_memory_mode("selective")
    run(qtbot, widget, widget.segment_frame)
    assert widget.state.session.options.connected is False
    assert not widget.connected_check.isChecked()
    # a volume ('z' or unlabelled axis): carried masks do not follow motion unless asked
    assert not widget.motion_check.isChecked() and widget.state.session.options.motion is False
    widget.motion_check.setChecked(True)
    assert widget.state.session.options.motion is True


def test_a_time_axis_turns_on_follow_motion(
    make_napari_viewer, tiny_nano_model, small_volume, qtbot
):
    viewer = make_napari_viewer()
    viewer.add_image(small_volume, name="movie", axis_labels=("t", "y", "x"))
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_nano_model)  # nano's profile follows motion on time axes
    assert widget.motion_check.isChecked()
    assert not widget.ends_once_check.isChecked()  # cells leave and come back in a movie
    widget.add_object()
    place_point(widget, 3, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    assert widget.state.session.options.motion is True
    assert widget.state.session.options.ends_once is False
    widget.motion_check.setChecked(False)  # the user's choice wins over the axis label
    assert widget.state.session.options.motion is False and widget.state.options.motion is False


def test_a_depth_axis_ends_objects_once_with_the_nano_profile(
    make_napari_viewer, tiny_nano_model, tiny_sam2_model, small_volume, qtbot
):
    viewer = make_napari_viewer()
    viewer.add_image(small_volume, name="stack", axis_labels=("z", "y", "x"))
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_sam2_model)  # sam2's behaviour: off
    assert not widget.ends_once_check.isChecked()
    widget.set_model(tiny_nano_model)
    assert widget.ends_once_check.isChecked()
    assert "objects end once on depth axes" in widget.model_picker.status.text()
    widget.add_object()
    place_point(widget, 3, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    assert widget.state.session.options.ends_once is True
    widget.ends_once_check.setChecked(False)  # live on the session, kept on the image
    assert widget.state.session.options.ends_once is False
    assert widget.state.options.ends_once is False
    widget.set_model(tiny_sam2_model)
    widget.set_model(tiny_nano_model)  # the user's choice wins over the profile
    assert not widget.ends_once_check.isChecked()


def test_zoom_to_each_object_gives_objects_their_own_regions(make_napari_viewer, tiny_model, qtbot):
    from napari_samed2.synthetic import nuclei_volume

    volume = nuclei_volume(shape=(4, 256, 256), seed=2).image
    viewer = make_napari_viewer()
    viewer.add_image(volume, name="big")
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_model)
    widget.add_object()
    place_point(widget, 1, 40, 200)
    run(qtbot, widget, widget.segment_frame)
    assert not widget.state.session.options.zoom
    before = widget.state.labels.data.copy()
    widget.zoom_check.setChecked(True)  # restarts the session, keeps the labels
    assert widget.state.options.zoom and widget.state.session is None
    np.testing.assert_array_equal(widget.state.labels.data, before)
    run(qtbot, widget, widget.segment_frame)
    run(qtbot, widget, widget.propagate_both)
    session = widget.state.session
    assert session.options.zoom
    row0, col0, row1, col1 = session.region_of(1)
    assert row0 <= 40 < row1 and col0 <= 200 < col1
    outside = np.ones((256, 256), bool)
    outside[row0:row1, col0:col1] = False
    labels = widget.state.labels.data
    for frame in range(4):
        np.testing.assert_array_equal(labels[frame] == 1, session.results[frame].masks[1])
        assert not (labels[frame][outside] == 1).any()


def test_a_sam2_network_gets_sam2s_behaviour_and_the_controls_say_so(
    make_napari_viewer, tiny_sam2_model, tiny_nano_model, small_volume, qtbot
):
    viewer = make_napari_viewer()
    viewer.add_image(small_volume, name="movie", axis_labels=("t", "y", "x"))
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(tiny_sam2_model)  # sam2's profile: no nano tricks, sam2's memory
    assert "sam2 profile" in widget.model_picker.status.text()
    assert widget.memory_combo.currentData() == "sam2" and not widget.gate_spin.isEnabled()
    assert not widget.connected_check.isChecked() and not widget.motion_check.isChecked()
    widget.add_object()
    place_point(widget, 3, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    options = widget.state.session.options
    assert (options.memory, options.connected, options.motion) == ("sam2", False, False)
    # the same image with a nano-style model: its profile's defaults, shown on the controls
    widget.set_model(tiny_nano_model)
    assert "nano profile" in widget.model_picker.status.text()
    assert widget.memory_combo.currentData() == "selective"
    assert widget.connected_check.isChecked() and widget.motion_check.isChecked()
    # an explicit choice wins over any profile
    widget.connected_check.setChecked(False)
    widget.set_model(tiny_sam2_model)
    widget.set_model(tiny_nano_model)
    assert not widget.connected_check.isChecked()
    run(qtbot, widget, widget.segment_frame)
    session = widget.state.session
    widget.set_memory_mode("selective")  # what the profile already chose: the session stays
    assert widget.state.session is session
