"""Dice, IoU and size buckets on masks whose values are known."""

import numpy as np
import pytest

from napari_samed2.train.metrics import dice, equivalent_diameter, iou, size_bucket


def test_dice_and_iou_of_overlapping_squares():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[0:4, 0:4] = True  # 16 px
    b[2:6, 0:4] = True  # 16 px, 8 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert iou(a, b) == pytest.approx(8 / 24)
    assert dice(a, a) == 1.0 and iou(a, ~a) == 0.0


def test_empty_against_empty_is_perfect_and_shapes_must_match():
    empty = np.zeros((4, 4), bool)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(5, 4\)"):
        dice(empty, np.zeros((5, 4), bool))


def test_equivalent_diameter_and_buckets():
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 <= 10**2
    assert equivalent_diameter(disc) == pytest.approx(20, rel=0.03)
    stack = np.stack([disc, np.zeros_like(disc)])
    assert equivalent_diameter(stack) == pytest.approx(equivalent_diameter(disc))
    assert size_bucket(5) == "<12 px"
    assert size_bucket(12) == "12-20 px"
    assert size_bucket(100) == ">=40 px"


def test_extent_error_is_the_larger_offset_of_the_first_and_last_slice():
    from napari_samed2.train.metrics import extent_error

    truth = np.zeros((10, 4, 4), bool)
    truth[3:7, 1, 1] = True  # slices 3-6
    predicted = np.zeros_like(truth)
    predicted[3:7, 2, 2] = True  # same slices, other pixels: extent right, Dice 0
    assert extent_error(predicted, truth) == 0
    predicted[2:10, 2, 2] = True  # 2-9: one slice early, three late
    assert extent_error(predicted, truth) == 3
    assert extent_error(np.zeros_like(truth), truth) == 10  # nothing: off by the whole stack
    with pytest.raises(ValueError, match="truth is empty"):
        extent_error(predicted, np.zeros_like(truth))
    with pytest.raises(ValueError, match="stacks"):
        extent_error(predicted[0, 0], truth[0, 0])
