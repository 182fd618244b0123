"""Segmentation metrics on boolean masks: Dice, IoU, object size."""

from __future__ import annotations

import numpy as np

# Size buckets by equivalent diameter in pixels of the original image (per 2-D cross-section).
SIZE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<12 px", 0.0, 12.0),
    ("12-20 px", 12.0, 20.0),
    ("20-40 px", 20.0, 40.0),
    (">=40 px", 40.0, np.inf),
)


def _pair(prediction, truth) -> tuple[np.ndarray, np.ndarray]:
    prediction = np.asarray(prediction, bool)
    truth = np.asarray(truth, bool)
    if prediction.shape != truth.shape:
        raise ValueError(
            f"prediction {prediction.shape} and truth {truth.shape} must have the same shape"
        )
    return prediction, truth


def dice(prediction, truth) -> float:
    """Dice ``2|P∩G| / (|P| + |G|)``; 1.0 when both are empty.

    Parameters
    ----------
    prediction, truth : array-like of bool
        Same shape, any number of dimensions.
    """
    prediction, truth = _pair(prediction, truth)
    total = int(prediction.sum()) + int(truth.sum())
    if total == 0:
        return 1.0
    return 2.0 * int((prediction & truth).sum()) / total


def iou(prediction, truth) -> float:
    """Intersection over union; 1.0 when both are empty."""
    prediction, truth = _pair(prediction, truth)
    union = int((prediction | truth).sum())
    if union == 0:
        return 1.0
    return int((prediction & truth).sum()) / union


def extent_error(prediction, truth) -> int:
    """How many slices the predicted extent of an object in a stack is off from the true one:
    the larger of the offsets of its first and its last slice (0: it starts and ends where the
    truth does). An empty prediction of a present object counts as off by the stack's length.

    Parameters
    ----------
    prediction, truth : array-like of bool
        ``(Z, ...)`` the object's masks per slice or frame; ``truth`` not empty.
    """
    prediction, truth = _pair(prediction, truth)
    if prediction.ndim < 2:
        raise ValueError(f"masks must be stacks (Z, ...), got {prediction.ndim} dimension(s)")
    true_slices = np.flatnonzero(truth.reshape(len(truth), -1).any(1))
    if true_slices.size == 0:
        raise ValueError("truth is empty: an extent needs an object")
    got = np.flatnonzero(prediction.reshape(len(prediction), -1).any(1))
    if got.size == 0:
        return len(truth)
    return int(max(abs(got[0] - true_slices[0]), abs(got[-1] - true_slices[-1])))


def equivalent_diameter(mask) -> float:
    """Diameter of the disc with the area of ``mask``'s largest 2-D cross-section (pixels)."""
    mask = np.asarray(mask, bool)
    area = (
        mask.reshape(-1, *mask.shape[-2:]).sum(axis=(1, 2)).max() if mask.ndim > 2 else mask.sum()
    )
    return float(2.0 * np.sqrt(area / np.pi))


def size_bucket(diameter: float) -> str:
    """The `SIZE_BUCKETS` name for an equivalent diameter."""
    for name, low, high in SIZE_BUCKETS:
        if low <= diameter < high:
            return name
    raise ValueError(f"diameter must be >= 0, got {diameter}")
