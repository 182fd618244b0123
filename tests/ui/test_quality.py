"""The annotator with the embedded samed2-nano model on a synthetic volume with ground truth:
one click per nucleus, propagation, then a correction. Dice, not plumbing."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from napari_samed2.model import REGISTRY, load_model
from napari_samed2.train.metrics import dice
from napari_samed2.ui import SAMed2Widget

pytestmark = pytest.mark.gui
NANO = resources.files("napari_samed2").joinpath(REGISTRY["samed2-nano"].bundled)


def run(qtbot, widget, action) -> None:
    with qtbot.waitSignal(widget.run_finished, timeout=120_000) as blocker:
        action()
    assert blocker.args[0]["error"] is None


@pytest.mark.skipif(not NANO.is_file(), reason="the embedded samed2-nano weights are not built")
def test_one_click_follows_a_nucleus_and_a_correction_helps(make_napari_viewer, qtbot):
    from napari_samed2.synthetic import nuclei_volume

    sample = nuclei_volume(shape=(16, 128, 128), seed=11)
    viewer = make_napari_viewer()
    viewer.add_image(sample.image, name="nuclei")
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(load_model("samed2-nano", "cpu", progressbar=False))
    middle = 8
    ids, sizes = np.unique(sample.labels[middle][sample.labels[middle] > 0], return_counts=True)
    truth_id = int(ids[np.argmax(sizes)])
    truth = sample.labels == truth_id
    rows, cols = np.nonzero(truth[middle])
    nearest = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    widget.add_object()
    widget.go_to_frame(middle)
    widget.start_points()
    widget.state.points.add([middle, rows[nearest], cols[nearest]])
    run(qtbot, widget, widget.segment_frame)
    labels = widget.state.labels
    first = dice(labels.data[middle] == 1, truth[middle])
    run(qtbot, widget, widget.propagate_both)
    propagated = dice(labels.data == 1, truth)
    per_slice = [dice(labels.data[f] == 1, truth[f]) for f in range(16)]
    print(f"\nsamed2-nano, one click: Dice {first:.3f} on the clicked slice, {propagated:.3f} on")
    print("the volume; per slice " + " ".join(f"{d:.2f}" for d in per_slice))
    # the bar for a default model: a click segments the nucleus, propagation follows it
    # (measured with the shipped stage-3 weights: 0.977 and 0.966)
    assert first > 0.9
    assert propagated > 0.85

    # correct the worst slice with its true mask (as a user painting it would), accept
    present = [f for f in range(16) if truth[f].sum() > 20 and f != middle]
    worst = min(present, key=lambda f: per_slice[f])
    labels.data_setitem(_frame_indices(worst, labels.data[worst] == 1), 0)
    labels.data_setitem(_frame_indices(worst, truth[worst]), 1)
    run(qtbot, widget, widget.accept_correction)
    corrected = dice(labels.data == 1, truth)
    print(
        f"after correcting slice {worst} (Dice {per_slice[worst]:.3f}): volume Dice {corrected:.3f}"
    )
    np.testing.assert_array_equal(labels.data[worst] == 1, truth[worst])  # kept as painted
    # measured: 0.966 -> 0.944. The corrected slice is exact, but re-propagating from it changes
    # slices that were right (docs/models.md); a larger loss than this is a regression.
    assert corrected >= propagated - 0.03, "an accepted true mask must not make things much worse"


@pytest.mark.skipif(not NANO.is_file(), reason="the embedded samed2-nano weights are not built")
@pytest.mark.parametrize("paint_first", [False, True])
def test_a_new_object_takes_the_pixels_the_engine_gives_it(make_napari_viewer, qtbot, paint_first):
    from napari_samed2.synthetic import nuclei_image

    sample = nuclei_image(shape=(128, 128), seed=4)  # nuclei 10 and 15 touch
    first, second = sample.labels == 10, sample.labels == 15
    viewer = make_napari_viewer()
    viewer.add_image(sample.image, name="nuclei")
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.set_model(load_model("samed2-nano", "cpu", progressbar=False))
    # a box around both nuclei: object 1 covers both
    rows, cols = np.nonzero(first | second)
    widget.add_object()
    widget.start_box()
    widget.state.boxes.add_rectangles(
        np.array([[rows.min(), cols.min()], [rows.max(), cols.max()]])
    )
    run(qtbot, widget, widget.segment_frame)
    labels = widget.state.labels
    assert (labels.data[second] == 1).mean() > 0.8
    if paint_first:  # an edit of object 1 the user has not accepted yet
        labels.data_setitem((np.array([0]), np.array([0])), 1)
        assert widget.state.pending.frames == {0: {1}}
    before = labels.data.copy()
    # a click on the second nucleus as object 2
    rows, cols = np.nonzero(second)
    nearest = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    widget.add_object()
    widget.start_points()
    widget.state.points.add([rows[nearest], cols[nearest]])
    run(qtbot, widget, widget.segment_frame)
    masks = widget.state.session.results[0].masks
    if paint_first:
        # object 1 holds unaccepted paint on this frame: it keeps every pixel, 2 takes background
        np.testing.assert_array_equal(labels.data == 1, before == 1)
        np.testing.assert_array_equal(labels.data == 2, masks[2] & (before == 0))
        return
    # it takes from object 1 the pixels the engine gave it: the layer holds the engine's masks
    assert ((before == 1) & (labels.data == 2)).sum() > 0.5 * second.sum()
    np.testing.assert_array_equal(labels.data == 1, masks[1])
    np.testing.assert_array_equal(labels.data == 2, masks[2])
    assert dice(labels.data == 2, second) > 0.85  # measured 0.918


def _frame_indices(frame: int, mask: np.ndarray) -> tuple:
    rows, cols = np.nonzero(mask)
    return (np.full(rows.shape, frame), rows, cols)
