"""Degradation: frames replaced by noise or blanks hide exactly their labels."""

import numpy as np

from napari_samed2.synthetic import corrupt_frames, nuclei_volume


def test_corrupt_frames_hides_labels_only_where_frames_are_replaced():
    sample = nuclei_volume(shape=(12, 48, 48), seed=1)
    corrupted = corrupt_frames(sample, seed=3, fraction=0.25)
    frames = corrupted.events["corrupted"]
    assert len(frames) == 3 and 0 not in frames and 11 not in frames
    for frame in range(12):
        if frame in frames:
            assert (corrupted.labels[frame] == -1).all()
            assert not np.array_equal(corrupted.image[frame], sample.image[frame])
        else:
            np.testing.assert_array_equal(corrupted.labels[frame], sample.labels[frame])
            np.testing.assert_array_equal(corrupted.image[frame], sample.image[frame])


def test_corrupt_frames_in_a_burst_are_consecutive_and_inside():
    sample = nuclei_volume(shape=(12, 48, 48), seed=1)
    frames = corrupt_frames(sample, seed=3, fraction=0.34, burst=True).events["corrupted"]
    assert len(frames) == 4 and frames == list(range(frames[0], frames[0] + 4))
    assert frames[0] >= 1 and frames[-1] <= 10
