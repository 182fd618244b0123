"""Motion of an object between two frames, and its carried mask moved along.

Models that carry the previous frame's mask as the next frame's mask prompt (`carry_mask`, the
embedded nano model) see that mask where the object *was*. In a time-lapse a cell moves a few
pixels a frame and the decoder follows it only partly, so the mask lags a little more on every
frame: that lag was most of nano's loss on long tracks. Estimating the object's shift by phase
correlation of the two frames in a window around it, and moving the carried mask by it, gives
the decoder a prompt that sits on the object. Slices of a volume change shape rather than
place, so this is for time-lapses and videos only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from skimage.registration import phase_cross_correlation

MIN_WINDOW = 8  # pixels: smaller windows give no usable correlation


def object_shift(
    previous: np.ndarray, current: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.5
) -> tuple[float, float] | None:
    """How far the content of ``box`` moved from ``previous`` to ``current``.

    Parameters
    ----------
    previous, current : ndarray, shape (rows, cols)
        The two frames (same shape, intensities on one scale).
    box : (row0, col0, row1, col1)
        The object's bounding box in ``previous`` (end exclusive).
    margin : float
        The correlation window is the box grown by this fraction of its size on every side
        (clipped to the frame).

    Returns
    -------
    (dy, dx) or None
        The shift in pixels, subpixel (1/4), such that ``current`` ~ ``previous`` moved by it;
        None when the window is too small or the shift is larger than the box itself (no
        object moves that far between neighbouring frames: the correlation locked on
        something else, e.g. a blank or noisy frame).
    """
    if previous.shape != current.shape:
        raise ValueError(f"frames differ in shape: {previous.shape} and {current.shape}")
    row0, col0, row1, col1 = box
    height, width = row1 - row0, col1 - col0
    pad_rows, pad_cols = round(height * margin), round(width * margin)
    top, left = max(0, row0 - pad_rows), max(0, col0 - pad_cols)
    bottom = min(previous.shape[0], row1 + pad_rows)
    right = min(previous.shape[1], col1 + pad_cols)
    if min(bottom - top, right - left) < MIN_WINDOW:
        return None
    before = previous[top:bottom, left:right]
    after = current[top:bottom, left:right]
    if np.ptp(before) == 0 or np.ptp(after) == 0:
        return None  # a constant window: nothing to correlate
    shift, _, _ = phase_cross_correlation(after, before, upsample_factor=4, normalization=None)
    dy, dx = float(shift[0]), float(shift[1])
    if abs(dy) > height or abs(dx) > width:
        return None
    return dy, dx


def shift_logits(logits: torch.Tensor, rows: float, cols: float) -> torch.Tensor:
    """``(1, 1, h, w)`` mask logits moved by ``rows`` and ``cols`` grid cells (bilinear); what
    comes in from outside the grid is background (the lowest logit)."""
    _, _, height, width = logits.shape
    theta = torch.tensor(
        [[[1.0, 0.0, -2.0 * cols / width], [0.0, 1.0, -2.0 * rows / height]]],
        dtype=logits.dtype,
        device=logits.device,
    )
    grid = F.affine_grid(theta, list(logits.shape), align_corners=False)
    floor = logits.min()
    moved = F.grid_sample(
        logits - floor, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return moved + floor
