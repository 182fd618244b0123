"""Prompt simulation from ground-truth masks: clicks, boxes, and correction clicks.

Coordinates follow sam2: ``(x, y)`` in pixels of the mask given; labels 1 = positive click,
0 = negative click, 2/3 = box corners (top-left, bottom-right).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

POSITIVE, NEGATIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = 1, 0, 2, 3


@dataclass
class PointPrompt:
    """Points of one object: ``coords`` ``(P, 2)`` float32 (x, y), ``labels`` ``(P,)`` int32."""

    coords: np.ndarray
    labels: np.ndarray

    def extended(self, other: PointPrompt) -> PointPrompt:
        return PointPrompt(
            np.concatenate([self.coords, other.coords]).astype(np.float32),
            np.concatenate([self.labels, other.labels]).astype(np.int32),
        )


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (Y, X), got shape {mask.shape}")
    if not mask.any():
        raise ValueError("mask is empty: no object to prompt")
    return mask


def centre_click(mask: np.ndarray) -> PointPrompt:
    """The positive click a user would make: the object's most interior pixel.

    Ties (several pixels equally far from the border) resolve to the first in raster order,
    so the click is deterministic.
    """
    mask = _check_mask(mask)
    distance = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), mask.shape)
    return PointPrompt(np.array([[x, y]], np.float32), np.array([POSITIVE], np.int32))


def random_click(mask: np.ndarray, rng: np.random.Generator, interior: bool = False) -> PointPrompt:
    """A positive click uniformly inside ``mask`` (``interior``: weighted to the centre)."""
    mask = _check_mask(mask)
    if interior:
        weight = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1].ravel() ** 2
    else:
        weight = mask.ravel().astype(np.float64)
    index = rng.choice(weight.size, p=weight / weight.sum())
    y, x = np.unravel_index(int(index), mask.shape)
    return PointPrompt(np.array([[x, y]], np.float32), np.array([POSITIVE], np.int32))


def negative_click_near(
    mask: np.ndarray, rng: np.random.Generator, margin: int = 8
) -> PointPrompt | None:
    """A negative click in the background within ``margin`` pixels of the object (or None)."""
    mask = _check_mask(mask)
    ring = ndi.binary_dilation(mask, iterations=margin) & ~mask
    candidates = np.flatnonzero(ring)
    if candidates.size == 0:
        return None
    y, x = np.unravel_index(int(rng.choice(candidates)), mask.shape)
    return PointPrompt(np.array([[x, y]], np.float32), np.array([NEGATIVE], np.int32))


def box_prompt(
    mask: np.ndarray, rng: np.random.Generator | None = None, jitter: float = 0.1
) -> PointPrompt:
    """The bounding box of ``mask`` as two corner points, optionally jittered.

    Like SAM2's training, each corner moves by up to ``jitter`` x the box side (at most 20 px).
    """
    mask = _check_mask(mask)
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float32)
    if rng is not None and jitter > 0:
        width, height = box[2] - box[0], box[3] - box[1]
        noise = np.minimum(jitter * np.array([width, height, width, height]), 20.0)
        box = box + rng.uniform(-1, 1, 4) * noise
        size = np.array(mask.shape[::-1], np.float32) - 1
        box = np.clip(box, 0, np.concatenate([size, size]))
    return PointPrompt(box.reshape(2, 2), np.array([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT], np.int32))


def correction_click(
    truth: np.ndarray, prediction: np.ndarray, rng: np.random.Generator
) -> PointPrompt | None:
    """A click on the prediction's error, as SAM2's training samples them.

    Picks uniformly among the wrongly predicted pixels: a missed pixel gives a positive click,
    a false one a negative click. Returns None when the prediction is exact.
    """
    truth = np.asarray(truth, bool)
    prediction = np.asarray(prediction, bool)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
    wrong = np.flatnonzero(truth.ravel() != prediction.ravel())
    if wrong.size == 0:
        return None
    index = int(rng.choice(wrong))
    y, x = np.unravel_index(index, truth.shape)
    label = POSITIVE if truth[y, x] else NEGATIVE
    return PointPrompt(np.array([[x, y]], np.float32), np.array([label], np.int32))
