"""Merge object masks into a frame of labels: each object's pixels follow its new mask, every
other label keeps its own.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np


def merge_object(region: np.ndarray, obj_id: int, mask: np.ndarray) -> np.ndarray:
    """A frame of labels with ``obj_id`` replaced by ``mask``.

    Parameters
    ----------
    region : ndarray of int, shape (Y, X)
        The Labels layer's frame.
    obj_id : int
        The object's label id.
    mask : ndarray of bool, shape (Y, X)
        The object's new mask.

    Returns
    -------
    ndarray, same shape and dtype as ``region``
        ``obj_id`` pixels outside ``mask`` become background; background pixels inside
        ``mask`` become ``obj_id``; pixels of every other label are kept.
    """
    if mask.shape != region.shape:
        raise ValueError(f"mask shape {mask.shape} does not match the frame shape {region.shape}")
    merged = region.copy()
    merged[(region == obj_id) & ~mask] = 0
    merged[mask & (region == 0)] = obj_id
    return merged


def merge_objects(
    region: np.ndarray, masks: dict[int, np.ndarray], takes_from: Collection[int] = ()
) -> np.ndarray:
    """`merge_object` for several objects at once: all of them first give up the pixels
    outside their new masks, then each takes the background inside its mask. Pixels one
    object gives up and another's new mask covers go to the other (in any order).

    ``takes_from`` names labels whose pixels the new masks may take too: the engine's other
    objects, when it has already decided (by mask logit) which object owns each pixel.
    Every other label keeps its pixels.
    """
    merged = region.copy()
    checked = {}
    for obj_id, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != region.shape:
            raise ValueError(
                f"mask shape {mask.shape} of object {obj_id} does not match the frame shape "
                f"{region.shape}"
            )
        checked[int(obj_id)] = mask
        merged[(region == obj_id) & ~mask] = 0
    free = merged == 0
    yielding = [int(i) for i in takes_from if int(i) not in checked]
    if yielding:
        free |= np.isin(merged, yielding)
    for obj_id, mask in checked.items():
        taken = mask & free
        merged[taken] = obj_id
        free &= ~taken
    return merged
