"""The annotator's label-set box in a real viewer: add this frame, add all confirmed frames,
autosave of accepted corrections, and the issue's story (accept a correction, see it in the
set, fine-tune, use the new model)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from napari_samed2.labelset import LabelSet
from napari_samed2.train.finetune import FinetuneSettings
from napari_samed2.ui import SAMed2Widget
from napari_samed2.ui.finetune_panel import ANNOTATOR_MODEL

from .test_widget import RUN_TIMEOUT_MS, place_point, run

pytestmark = pytest.mark.gui
QUICK = FinetuneSettings(eval_every=1, num_frames=3, objects_per_clip=2, warmup=1, augment=False)


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    """Fine-tuned models are listed in a cache of this test's own."""
    monkeypatch.setenv("NAPARI_SAMED2_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


@pytest.fixture
def annotator(make_napari_viewer, tiny_model, small_volume, qtbot):
    viewer = make_napari_viewer()
    image = viewer.add_image(small_volume, name="volume")
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(copy.deepcopy(tiny_model))  # a fine-tune may swap weights into it
    return viewer, image, widget


def segment_at_4(qtbot, widget) -> int:
    obj = widget.add_object("nucleus")
    place_point(widget, 4, 20, 30)
    run(qtbot, widget, widget.segment_frame)
    return obj


def paint_and_accept(qtbot, widget, frame: int, obj: int, at=(32, 32)) -> np.ndarray:
    labels = widget.state.labels
    widget.go_to_frame(frame)
    labels.selected_label = obj
    labels.brush_size = 9
    labels.paint((frame, *at), obj)
    run(qtbot, widget, widget.accept_correction)
    return np.array(labels.data[frame])


def test_add_this_frame_writes_image_labels_and_provenance(annotator, qtbot, tmp_path):
    _viewer, image, widget = annotator
    obj = segment_at_4(qtbot, widget)
    run(qtbot, widget, widget.propagate_both)
    labels = widget.state.labels
    labels.data[6, 2:6, 2:6] = 9  # painted by hand, never seen by the model
    labels.refresh()
    labelset = widget.set_labelset(tmp_path / "set")
    assert isinstance(labelset, LabelSet) and len(labelset) == 0
    session = widget.state.session

    widget.go_to_frame(4)
    report = widget.labelset_panel.add_this_frame()
    assert report.added == [1] and report.replaced == 0
    entry = labelset.entry(1)
    np.testing.assert_array_equal(entry.image(), image.data[4])
    assert entry.image().dtype == image.data.dtype
    np.testing.assert_array_equal(entry.labels(), labels.data[4])
    assert entry.complete
    assert entry.source["name"] == "volume" and entry.source["axis"] == 0
    assert entry.source["frame"] == 4 and entry.source["position"] == []
    (record,) = entry.objects
    assert record.id == obj and record.origin == "accepted"
    assert record.confidence == pytest.approx(session.results[4].confidence[obj])
    assert record.model == {"name": "test", "sha256": None}
    assert record.prompts["points"] == [[20.0, 30.0]] and record.prompts["labels"] == [1]

    widget.go_to_frame(6)
    widget.labelset_panel.add_this_frame()
    origins = {o.id: o.origin for o in labelset.entry(2).objects}
    assert origins == {obj: "predicted", 9: "imported"}
    assert widget.labelset_panel.size_label.text() == "2 entries · 2 objects"

    # the same frame again replaces its entry
    widget.go_to_frame(4)
    report = widget.labelset_panel.add_this_frame()
    assert report.replaced == 1 and labelset.ids() == [2, 3]
    assert labelset.entry(3).frame == 4


def test_add_all_confirmed_frames_in_a_worker(annotator, qtbot, tmp_path):
    _viewer, _image, widget = annotator
    obj = segment_at_4(qtbot, widget)
    run(qtbot, widget, widget.propagate_both)
    painted = paint_and_accept(qtbot, widget, 7, obj)
    labelset = widget.set_labelset(tmp_path / "set")
    panel = widget.labelset_panel
    with qtbot.waitSignal(panel.written, timeout=RUN_TIMEOUT_MS) as blocker:
        panel.add_confirmed_frames()
    assert len(blocker.args[0].added) == 2
    frames = {e.frame: e for e in labelset.entries()}
    assert sorted(frames) == [4, 7]
    np.testing.assert_array_equal(frames[7].labels(), painted)
    assert [o.origin for o in frames[7].objects] == ["accepted"]
    qtbot.waitUntil(lambda: panel.worker is None, timeout=RUN_TIMEOUT_MS)
    assert panel.add_frame_button.isEnabled()


def test_errors_are_notified_not_raised(annotator, qtbot, tmp_path):
    _viewer, _image, widget = annotator
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "other.txt").write_text("not a set")
    assert widget.set_labelset(tmp_path / "busy") is None  # not empty, not a set
    assert widget.labelset_panel.add_this_frame() is None  # no set chosen


def test_accept_a_correction_see_it_in_the_set_finetune_and_use_the_model(
    annotator, qtbot, tmp_path
):
    """The issue's GUI test."""
    _viewer, _image, widget = annotator
    labelset = widget.set_labelset(tmp_path / "set")
    widget.labelset_panel.autosave_check.setChecked(True)
    obj = segment_at_4(qtbot, widget)
    run(qtbot, widget, widget.propagate_both)
    painted = paint_and_accept(qtbot, widget, 7, obj)
    (entry,) = labelset.entries()  # saved the moment it was accepted
    assert entry.frame == 7 and [o.origin for o in entry.objects] == ["corrected"]
    assert entry.objects[0].confidence == 1.0
    np.testing.assert_array_equal(entry.labels(), painted)
    # a second correction of the same frame replaces the entry
    painted = paint_and_accept(qtbot, widget, 7, obj, at=(12, 50))
    assert [e.frame for e in labelset.entries()] == [7] and len(labelset) == 1
    widget.labelset_panel.add_this_frame()  # frame 7 is on screen: replaced again
    widget.go_to_frame(4)
    widget.labelset_panel.add_this_frame()
    assert sorted(e.frame for e in labelset.entries()) == [4, 7]

    # fine-tune the annotator's model on the set (a few steps), then use the new model
    panel = widget.open_finetuning()
    assert panel.labelset_edit.text() == str(labelset.path)
    panel.set_base(ANNOTATOR_MODEL)
    panel.holdout_spin.setValue(0.0)
    panel.steps, panel.settings = 2, QUICK
    with qtbot.waitSignal(panel.finished, timeout=RUN_TIMEOUT_MS) as done:
        assert panel.start()
    result = done.args[0]
    assert not isinstance(result, BaseException), result
    assert result.steps == 2 and result.path.is_file()
    qtbot.waitUntil(lambda: panel.use_button.isEnabled(), timeout=RUN_TIMEOUT_MS)
    confirmed_before = widget.state.confirmed()
    frame_4, frame_7 = (np.array(widget.state.labels.data[f]) for f in (4, 7))
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS) as rerun:
        with qtbot.waitSignal(panel.model_used, timeout=RUN_TIMEOUT_MS):
            assert panel.use_model()
    assert rerun.args[0]["kind"] == "re-propagation" and rerun.args[0]["error"] is None
    assert widget.model.name == result.path.stem and widget.model.source == result.path
    session = widget.state.session
    assert session.confirmed_frames == {obj: sorted(confirmed_before[obj])}
    labels = widget.state.labels.data
    np.testing.assert_array_equal(labels[4], frame_4)  # confirmed frames are kept
    np.testing.assert_array_equal(labels[7], frame_7)
    for frame in (0, 5, 9):  # the others follow the new model
        np.testing.assert_array_equal(labels[frame] == obj, session.results[frame].masks[obj])
    assert "fine-tuned" in widget.model_picker.model_combo.itemText(
        widget.model_picker.model_combo.findData(str(result.path))
    )


def test_learn_now_button_swaps_decoder_weights_and_repropagates(annotator, qtbot, tmp_path):
    _viewer, _image, widget = annotator
    labelset = widget.set_labelset(tmp_path / "set")
    widget.labelset_panel.autosave_check.setChecked(True)
    obj = segment_at_4(qtbot, widget)
    run(qtbot, widget, widget.propagate_both)
    paint_and_accept(qtbot, widget, 7, obj)
    assert len(labelset) == 1
    net, session = widget.model.net, widget.state.session
    decoder = {k: v.clone() for k, v in net.sam_mask_decoder.state_dict().items()}
    encoder = {k: v.clone() for k, v in net.image_encoder.state_dict().items()}
    cached = len(session.cache)
    widget.learning.steps, widget.learning.settings = 2, QUICK
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS) as rerun:
        with qtbot.waitSignal(widget.learning.finished, timeout=RUN_TIMEOUT_MS) as learned:
            assert widget.learn_now()
    result = learned.args[0]
    assert not isinstance(result, BaseException), result
    assert rerun.args[0]["kind"] == "re-propagation" and rerun.args[0]["error"] is None
    assert widget.model.net is net and widget.state.session is session  # swapped in place
    changed = [
        k for k, v in net.sam_mask_decoder.state_dict().items() if not torch.equal(v, decoder[k])
    ]
    assert changed, "the decoder must have learned"
    assert all(torch.equal(v, encoder[k]) for k, v in net.image_encoder.state_dict().items())
    assert len(session.cache) >= cached > 0  # features stayed cached
    assert widget.model.name == result.path.stem
    assert session.confirmed_frames == {obj: [4, 7]}
    labels = widget.state.labels.data
    for frame in (0, 5, 9):
        np.testing.assert_array_equal(labels[frame] == obj, session.results[frame].masks[obj])


def test_frames_are_not_added_while_a_run_changes_them(annotator, qtbot, tmp_path):
    import threading

    from napari_samed2.ui.runner import Call

    _viewer, _image, widget = annotator
    segment_at_4(qtbot, widget)
    labelset = widget.set_labelset(tmp_path / "set")
    release = threading.Event()
    result = widget.state.session.results[4]

    def held():
        release.wait(RUN_TIMEOUT_MS / 1000)
        return result

    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        widget._start_run("test", widget.state, [Call(held)])
        assert widget.labelset_panel.add_this_frame() is None
        widget.labelset_panel.add_confirmed_frames()
        release.set()
    assert len(labelset) == 0
    assert widget.labelset_panel.add_this_frame().added == [1]  # after the run: added
