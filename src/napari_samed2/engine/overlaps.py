"""One object per pixel: where several objects' masks overlap, the highest mask logit wins.

SAM2 decodes every object on its own, so the masks of touching objects (cells in a tissue,
nuclei in a cluster) often overlap; a Labels layer can hold only one of them per pixel. Giving
each contested pixel to the object the model is surest of there (sam2's
``_apply_non_overlapping_constraints`` does the same on memory masks) is better than letting
the last-drawn object win.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Box = tuple[int, int, int, int]  # row0, col0, row1, col1 (end exclusive)


def resolve_overlaps(
    masks: dict[int, np.ndarray], logits_in: Callable[[int, Box], np.ndarray]
) -> dict[int, np.ndarray]:
    """``masks`` with every pixel claimed by several objects kept only by the surest one.

    Parameters
    ----------
    masks : dict of int to ndarray
        Object id to a boolean mask, all of one shape ``(rows, cols)``.
    logits_in : callable
        ``logits_in(obj_id, box)``: that object's mask logits over ``box`` of the frame, shape
        ``(row1 - row0, col1 - col0)`` (``-inf`` where the object's model input does not
        reach). Called only for objects that claim a contested pixel, and only over the box
        around the contested pixels.

    Returns
    -------
    dict of int to ndarray
        New masks; objects without contested pixels keep their array.
    """
    if len(masks) < 2:
        return dict(masks)
    ids = list(masks)
    claims = np.zeros(next(iter(masks.values())).shape, np.uint16)
    for obj_id in ids:
        claims += masks[obj_id]
    contested = claims > 1
    if not contested.any():
        return dict(masks)
    rows, cols = np.nonzero(contested)
    box = (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
    row0, col0, row1, col1 = box
    in_box = contested[row0:row1, col0:col1]
    rivals = [obj_id for obj_id in ids if (masks[obj_id][row0:row1, col0:col1] & in_box).any()]
    best = np.full(in_box.shape, -np.inf, np.float32)
    winner = np.full(in_box.shape, -1, np.int64)
    for index, obj_id in enumerate(rivals):
        claimed = masks[obj_id][row0:row1, col0:col1] & in_box
        logits = np.where(claimed, np.asarray(logits_in(obj_id, box), np.float32), -np.inf)
        better = logits > best
        best[better] = logits[better]
        winner[better] = index
    resolved = dict(masks)
    for index, obj_id in enumerate(rivals):
        lost = in_box & (winner != index)
        if lost.any():
            mask = masks[obj_id].copy()
            mask[row0:row1, col0:col1] &= ~lost
            resolved[obj_id] = mask
    return resolved
