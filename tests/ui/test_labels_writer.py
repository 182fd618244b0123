"""Writing masks into a Labels layer: other labels untouched, one undo step per run."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels

from napari_samed2.labelset import merge_object, merge_objects
from napari_samed2.ui.frames import FrameGeometry
from napari_samed2.ui.labels_writer import LabelsWriter


def test_merge_object_keeps_other_labels():
    region = np.array([[0, 3, 3], [5, 5, 0], [3, 0, 0]], dtype=np.int32)
    mask = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=bool)
    merged = merge_object(region, 3, mask)
    # 3 leaves (2,0) and (0,2) (outside the mask), enters (0,0) and (2,2); 5 stays
    np.testing.assert_array_equal(merged, [[3, 3, 0], [5, 5, 0], [0, 0, 3]])
    with pytest.raises(ValueError, match=r"mask shape \(2, 2\) does not match the frame shape"):
        merge_object(region, 3, np.zeros((2, 2), bool))


@pytest.mark.parametrize("order", [(1, 2), (2, 1)])
def test_merge_objects_hands_pixels_over_in_any_order(order):
    # 1 gives its right column to 2 (disjoint new masks, as a non-overlapping session makes)
    region = np.array([[1, 1, 0], [1, 1, 7]], dtype=np.int32)
    new = {
        1: np.array([[1, 0, 0], [1, 0, 0]], bool),
        2: np.array([[0, 1, 1], [0, 1, 0]], bool),
    }
    merged = merge_objects(region, {obj: new[obj] for obj in order})
    np.testing.assert_array_equal(merged, [[1, 2, 2], [1, 2, 7]])  # 7 is not the model's
    with pytest.raises(ValueError, match=r"object 2 does not match the frame shape"):
        merge_objects(region, {2: np.zeros((2, 2), bool)})


def test_merge_objects_takes_pixels_only_from_the_labels_named():
    region = np.array([[1, 1, 3], [0, 2, 3]])
    mask = np.array([[False, True, True], [True, True, True]])
    merged = merge_objects(region, {4: mask}, takes_from={1, 2})
    np.testing.assert_array_equal(merged, [[1, 4, 3], [4, 4, 3]])  # 3 keeps its pixels
    # without takes_from only background is taken; a label in masks never counts as yielding
    np.testing.assert_array_equal(merge_objects(region, {4: mask}), [[1, 1, 3], [4, 2, 3]])
    both = merge_objects(region, {1: np.zeros((2, 3), bool), 4: mask}, takes_from={1})
    np.testing.assert_array_equal(both, [[0, 4, 3], [4, 2, 3]])


def test_a_run_is_one_undo_step_and_undo_restores_exactly():
    rng = np.random.default_rng(0)
    start = rng.integers(0, 3, (6, 16, 16)).astype(np.int32)
    layer = Labels(start.copy())
    writer = LabelsWriter(layer, FrameGeometry(ndim=3, frame_axis=0))
    paint_events = []
    layer.events.paint.connect(lambda event: paint_events.append(writer.writing))
    writer.begin_run()
    masks = {frame: rng.random((16, 16)) > 0.5 for frame in (1, 2, 4)}
    for frame, mask in masks.items():
        writer.write_run_frame(frame, {7: mask})
        # visible at once, only where no other label was
        assert np.array_equal(layer.data[frame] == 7, mask & (start[frame] == 0))
    writer.write_run_frame(2, {7: masks[2]})  # a frame written twice stays one change
    assert writer.end_run()
    assert len(layer._undo_history) == 1
    assert paint_events == [True], "the run's history event must be flagged as our own write"
    after = layer.data.copy()
    for frame in (0, 3, 5):
        np.testing.assert_array_equal(after[frame], start[frame])
    layer.undo()
    np.testing.assert_array_equal(layer.data, start)
    layer.redo()
    np.testing.assert_array_equal(layer.data, after)


def test_write_step_and_erase_object_on_a_4d_layer_touch_only_their_slice():
    start = np.zeros((2, 3, 8, 8), dtype=np.int32)
    start[:, :, :2, :2] = 4
    layer = Labels(start.copy())
    writer = LabelsWriter(layer, FrameGeometry(ndim=4, frame_axis=1, fixed={0: 1}))
    mask = np.zeros((8, 8), bool)
    mask[4:, 4:] = True
    assert writer.write_step(2, {9: mask})
    expected = start.copy()
    expected[1, 2, 4:, 4:] = 9
    np.testing.assert_array_equal(layer.data, expected)
    assert writer.erase_object(4)
    expected[1, :, :2, :2] = 0  # only the fixed slice t=1 is this geometry's
    np.testing.assert_array_equal(layer.data, expected)
    assert len(layer._undo_history) == 2
    layer.undo()
    layer.undo()
    np.testing.assert_array_equal(layer.data, start)
