"""SAM2 losses on inputs whose values are known by hand."""

import math

import pytest
import torch

from napari_samed2.train.losses import (
    LossWeights,
    actual_iou,
    dice_loss,
    focal_loss,
    sam2_loss,
)


def _square(size=8, lo=2, hi=6):
    mask = torch.zeros(1, 1, size, size)
    mask[..., lo:hi, lo:hi] = 1.0
    return mask


def test_focal_loss_of_a_half_sure_prediction_matches_the_formula():
    logits = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # positive pixel: 0.25 * ln2 * 0.25; negative: 0.75 * ln2 * 0.25
    expected = (0.25 * math.log(2) * 0.25 + 3 * 0.75 * math.log(2) * 0.25) / 4
    assert focal_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_dice_loss_is_small_for_a_confident_exact_mask_and_large_for_the_inverse():
    target = _square()
    exact = (target * 2 - 1) * 50
    assert dice_loss(exact, target).item() == pytest.approx(0.0, abs=1e-6)
    inverse = -exact
    assert dice_loss(inverse, target).item() == pytest.approx(1 - 1 / 65, abs=1e-4)  # 16 + 48 px


def test_actual_iou_of_shifted_square():
    target = _square()
    shifted = torch.roll(target, shifts=2, dims=-1) * 2 - 1
    # squares of 16 px overlapping on 8 px: IoU 8 / 24
    assert actual_iou(shifted, target).item() == pytest.approx(1 / 3)


def test_sam2_loss_backpropagates_only_through_the_best_candidate():
    target = _square()[:, 0]
    good = (_square() * 2 - 1) * 20
    bad = -good
    logits = torch.cat([bad, good, bad], dim=1).requires_grad_(True)
    ious = torch.tensor([[0.0, 1.0, 0.0]])
    terms = sam2_loss(logits, ious, torch.tensor([[10.0]]), target)
    terms.total.backward()
    grad = logits.grad.abs().flatten(2).sum(-1)[0]
    assert grad[1] > 0 and grad[0] == 0 and grad[2] == 0
    # IoU predictions are exact for every candidate: the IoU term is zero
    assert terms.iou.item() == pytest.approx(0.0, abs=1e-6)
    assert terms.dice.item() < 1e-3


def test_absent_object_only_trains_the_object_score():
    target = torch.zeros(1, 8, 8)
    logits = torch.randn(1, 1, 8, 8)
    terms = sam2_loss(logits, torch.tensor([[0.3]]), torch.tensor([[0.0]]), target)
    assert terms.focal.item() == 0 and terms.dice.item() == 0 and terms.iou.item() == 0
    assert terms.object_score.item() == pytest.approx(math.log(2), rel=1e-6)
    weights = LossWeights()
    assert terms.total.item() == pytest.approx(weights.object_score * math.log(2), rel=1e-6)
