"""The write policy of a run's results: which masks reach the labels, whose pixels they take."""

import numpy as np

from napari_samed2.labelset import FrameWrite, frame_write, merge_objects


def _masks():
    return {
        1: np.array([[True, False], [False, False]]),
        2: np.array([[False, True], [False, False]]),
        3: np.array([[False, False], [True, True]]),
    }


def test_a_propagated_frame_skips_confirmed_and_painted_objects():
    masks = _masks()
    write = frame_write(5, masks, painted={2}, protected={1: {5, 9}, 3: {4}})
    assert sorted(write.masks) == [3]  # 1 is confirmed on frame 5, 2 painted there
    assert write.masks[3] is masks[3]
    assert write.takes_from == frozenset()
    everything = frame_write(5, masks)
    assert sorted(everything.masks) == [1, 2, 3]
    assert everything.takes_from == frozenset()


def test_a_prompt_writes_its_objects_which_take_from_the_unpainted_others():
    masks = _masks()
    write = frame_write(0, masks, write=(2,), painted={3})
    assert sorted(write.masks) == [2]
    assert write.takes_from == frozenset({1})  # 3 holds unaccepted paint: it keeps its pixels
    region = np.array([[0, 1], [3, 3]], dtype=np.int32)
    merged = merge_objects(region, write.masks, write.takes_from)
    np.testing.assert_array_equal(merged, [[0, 2], [3, 3]])


def test_a_correction_writes_nothing():
    masks = _masks()
    assert frame_write(0, masks, write=()) == FrameWrite({})
    assert frame_write(0, masks, write=(7,), protected={1: {0}}) == FrameWrite({})
