"""The synthetic generators: shapes, dtypes, seeding, and labels that match the image."""

import numpy as np
import pytest

from napari_samed2 import synthetic
from napari_samed2.synthetic import (
    GENERATORS,
    Degradation,
    moving_cells_timelapse,
    nuclei_image,
    nuclei_volume,
)

SMALL = {2: (96, 96), 3: (8, 64, 64)}
STACKS = ("nuclei-volume", "organ-volume", "tissue-volume", "brain-volume", "timelapse")


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_generator_returns_matching_image_and_labels(name):
    generator = GENERATORS[name]
    ndim = 3 if name in STACKS else 2
    sample = generator(shape=SMALL[ndim], seed=1)
    assert sample.image.shape == SMALL[ndim]
    assert sample.labels.shape == SMALL[ndim]
    assert sample.labels.dtype == np.int32
    assert sample.image.dtype in (np.uint16, np.float32)
    assert sample.axis == (0 if ndim == 3 else None)
    assert len(sample.object_ids) >= 1
    assert sample.labels.min() == 0


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_seed_same_sample_other_seed_other_sample(name):
    generator = GENERATORS[name]
    shape = SMALL[3] if name in STACKS else SMALL[2]
    first, again, other = generator(shape=shape, seed=5), generator(shape=shape, seed=5), None
    other = generator(shape=shape, seed=6)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert not np.array_equal(first.image, other.image)


def test_objects_are_brighter_than_background_in_nuclei():
    sample = nuclei_image(shape=(128, 128), seed=2)
    inside = sample.image[sample.labels > 0].mean()
    outside = sample.image[sample.labels == 0].mean()
    assert inside > 2 * outside


def test_clean_degradation_keeps_labelled_pixels_distinct():
    clean = Degradation(blur_sigma=0, illumination=0, photons=0, read_noise=0, background=0)
    sample = nuclei_image(shape=(96, 96), seed=3, degradation=clean)
    assert sample.image[sample.labels == 0].max() == sample.image[sample.labels == 0].min()
    assert sample.image[sample.labels > 0].min() > sample.image[sample.labels == 0].max()


def test_nuclei_volume_objects_span_several_slices_and_come_and_go():
    sample = nuclei_volume(shape=(16, 96, 96), seed=0)
    spans = []
    for ident in sample.object_ids:
        slices = np.flatnonzero((sample.labels == ident).any(axis=(1, 2)))
        # one object, one contiguous run of slices
        assert np.all(np.diff(slices) == 1)
        spans.append(len(slices))
    assert max(spans) >= 3
    assert min(spans) < 16  # some nuclei start or end inside the stack


def test_timelapse_events_are_consistent_with_labels():
    sample = moving_cells_timelapse(shape=(20, 96, 96), seed=4)
    present = [set(np.unique(frame).tolist()) - {0} for frame in sample.labels]
    for ident in sample.events["enter"]:
        assert ident not in present[0]
    for ident in sample.events["leave"]:
        assert ident not in present[-1]
    for daughter, mother in sample.events["split"].items():
        first = next(t for t, ids in enumerate(present) if daughter in ids)
        assert mother not in present[first]
        assert mother in present[first - 1]
    # cells move: the centroid of an object present throughout shifts
    steady = set.intersection(*present)
    assert steady
    ident = min(steady)
    start = np.argwhere(sample.labels[0] == ident).mean(axis=0)
    end = np.argwhere(sample.labels[-1] == ident).mean(axis=0)
    assert np.hypot(*(end - start)) > 1.0


def test_bad_shape_is_refused_with_the_value_named():
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        nuclei_image(shape=(8, 8))
    with pytest.raises(ValueError, match="shape"):
        synthetic.nuclei_volume(shape=(64, 64))


def test_brain_volume_has_folded_tissue_classes_split_at_the_midline_and_compact_structures():
    from skimage.measure import perimeter

    from napari_samed2.synthetic import BRAIN_CLASSES, brain_volume

    sample = brain_volume(shape=(20, 128, 128), seed=0)
    assert sample.kind == "brain-volume" and sample.image.dtype == np.uint16
    assert set(sample.object_ids) == set(BRAIN_CLASSES)
    middle = sample.labels[10]

    def left_white(labels):  # left white matter with what it encloses
        return np.isin(labels, [1, 5, 7])

    # the folded boundary is longer than the smooth one of the same brain
    smooth = brain_volume(shape=(20, 128, 128), seed=0, folds=0.0).labels[10]
    assert perimeter(left_white(middle)) > 1.2 * perimeter(left_white(smooth))
    # the hemispheres do not touch: a fissure of fluid between them
    left, right = np.isin(middle, [1, 3, 5, 7]), np.isin(middle, [2, 4, 6, 8])
    assert not (np.roll(left, 1, axis=1) & right).any()
    # ventricles and deep nuclei are compact: a few percent of the white matter
    sizes = np.bincount(sample.labels.ravel(), minlength=9)
    assert sizes[5:9].max() < 0.1 * sizes[1:3].min()
    # T1 contrast on a scanner offset: white > grey > ventricle
    mean = {i: sample.image[sample.labels == i].mean() for i in (1, 3, 5)}
    assert mean[1] > mean[3] > mean[5] > 700
    # the cortex ends before the stack does on at least one side: objects end mid-stack
    slices = [np.flatnonzero((sample.labels == i).any((1, 2))) for i in BRAIN_CLASSES]
    assert any(s[0] > 0 or s[-1] < 19 for s in slices)
    with pytest.raises(ValueError, match="z_step must be > 0, got -1"):
        brain_volume(shape=(4, 32, 32), z_step=-1)
