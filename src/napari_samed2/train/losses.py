"""SAM2's training losses: focal, dice, IoU regression (L1) and object-score BCE.

Written from SAM2's training recipe (``training/loss_fns.py`` in facebookresearch/sam2, which
does not import here without ``tensordict``): over the multimask outputs, focal and dice are
back-propagated only through the candidate with the lowest focal x 20 + dice; the predicted IoU
of every candidate is regressed on its actual IoU (L1); mask terms count only where the object
is present, and the object score is trained with plain BCE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0


@dataclass(frozen=True)
class LossWeights:
    """Weights of the four terms (SAM2's defaults)."""

    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    object_score: float = 1.0


@dataclass
class LossTerms:
    """The four terms (each summed over objects and divided by their number) and the total."""

    focal: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    object_score: torch.Tensor
    total: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {name: float(getattr(self, name).detach()) for name in self.__dataclass_fields__}

    def __add__(self, other: LossTerms) -> LossTerms:
        return LossTerms(*(getattr(self, n) + getattr(other, n) for n in self.__dataclass_fields__))


def focal_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sigmoid focal loss (alpha 0.25, gamma 2) averaged over pixels.

    Parameters
    ----------
    logits, targets : torch.Tensor
        ``(N, M, H, W)`` mask logits and {0, 1} targets (float).

    Returns
    -------
    torch.Tensor
        ``(N, M)``.
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    alpha_t = FOCAL_ALPHA * targets + (1 - FOCAL_ALPHA) * (1 - targets)
    return (alpha_t * ce * (1 - p_t) ** FOCAL_GAMMA).flatten(2).mean(-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft dice loss ``1 - (2|P∩G| + 1) / (|P| + |G| + 1)``, ``(N, M, H, W)`` -> ``(N, M)``."""
    prob = logits.sigmoid().flatten(2)
    targets = targets.flatten(2)
    numerator = 2 * (prob * targets).sum(-1)
    denominator = prob.sum(-1) + targets.sum(-1)
    return 1 - (numerator + 1) / (denominator + 1)


def actual_iou(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU of the binarised prediction (logit > 0) with the target, ``(N, M)``."""
    pred = logits.flatten(2) > 0
    truth = targets.flatten(2) > 0
    intersection = (pred & truth).sum(-1).float()
    union = (pred | truth).sum(-1).float()
    return intersection / union.clamp(min=1.0)


def sam2_loss(
    multimask_logits: torch.Tensor,
    predicted_ious: torch.Tensor,
    object_score_logits: torch.Tensor,
    target: torch.Tensor,
    weights: LossWeights = LossWeights(),
) -> LossTerms:
    """The loss of one prediction step.

    Parameters
    ----------
    multimask_logits : torch.Tensor
        ``(N, M, H, W)`` float mask logits of the ``M`` candidates (M = 1 or 3).
    predicted_ious : torch.Tensor
        ``(N, M)`` the decoder's IoU predictions.
    object_score_logits : torch.Tensor
        ``(N, 1)`` the decoder's object-presence logits.
    target : torch.Tensor
        ``(N, H, W)`` or ``(N, 1, H, W)`` ground-truth masks (bool or {0, 1} float).
    weights : LossWeights
        Term weights.

    Returns
    -------
    LossTerms
        Terms summed over the N objects and divided by N.
    """
    if target.dim() == 3:
        target = target[:, None]
    target = target.float().expand_as(multimask_logits)
    count = max(1, target.shape[0])
    focal = focal_loss(multimask_logits, target)
    dice = dice_loss(multimask_logits, target)
    iou = F.l1_loss(predicted_ious.float(), actual_iou(multimask_logits, target), reduction="none")
    best = torch.argmin(focal * weights.focal + dice * weights.dice, dim=-1)
    rows = torch.arange(focal.shape[0], device=focal.device)
    present = target[:, 0].flatten(1).any(-1).float()
    focal = (focal[rows, best] * present).sum() / count
    dice = (dice[rows, best] * present).sum() / count
    # SAM2.1's recipe supervises the IoU head on every candidate (supervise_all_iou).
    iou = (iou.mean(-1) * present).sum() / count
    objectness = (
        F.binary_cross_entropy_with_logits(
            object_score_logits.float().reshape(-1), present, reduction="sum"
        )
        / count
    )
    total = (
        weights.focal * focal
        + weights.dice * dice
        + weights.iou * iou
        + weights.object_score * objectness
    )
    return LossTerms(focal, dice, iou, objectness, total)
