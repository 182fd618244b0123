"""Choosing an object's zoom region at its first prompt (``zoom=True``): the square around the
prompt where the model is surest of its mask, or a square around a mask prompt."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .frames import ZOOM_CONTEXT, ZOOM_MIN_SIZE, zoom_region, zoom_scales
from .results import FrameResult
from .tracking import ObjectTrack

Region = tuple[int, int, int, int]  # (row0, col0, row1, col1)


def fitted_first_prompt(
    *,
    frame: int,
    obj_id: int,
    anchor,
    view: Region,
    tracks: dict[int, ObjectTrack],
    results: dict[int, FrameResult],
    new_track: Callable[[Region], ObjectTrack],
    prompt_in: Callable[[Region], FrameResult],
    resolve: Callable[[int], None],
) -> FrameResult:
    """Give the new object ``obj_id`` its region and its first prompt on ``frame``.

    The prompt (``prompt_in(region)`` decodes it with the object's track in ``tracks``) is
    tried in squares around ``anchor`` (the prompt's points, frame coordinates) of 64, 128,
    256 ... pixels up to the session's whole ``view`` (`frames.zoom_scales`); the region where
    the model is most confident of its mask (its predicted IoU, objects it sees as present
    first) is kept. ``new_track(region)`` gives a track in a region; ``resolve(frame)``
    makes the frame's masks disjoint again after a failed try.
    """
    best, best_score = None, None
    try:
        for region in zoom_scales(anchor, view, min_size=ZOOM_MIN_SIZE):
            tracks[obj_id] = new_track(region)
            result = prompt_in(region)
            score = (result.object_score[obj_id] > 0, result.iou[obj_id])
            if best_score is None or score > best_score:
                best, best_score = region, score
            # undo this try (a first prompt touches nothing else: no bank entry, no memory)
            del tracks[obj_id]
            results[frame] = results[frame].without(obj_id)
        tracks[obj_id] = new_track(best)
        return prompt_in(best)
    except BaseException:
        # a failed or interrupted first prompt leaves no half-made object behind
        tracks.pop(obj_id, None)
        if frame in results:
            results[frame] = results[frame].without(obj_id)
            resolve(frame)  # undo what the tries trimmed from the others
        raise


def mask_region(mask, frame_shape: tuple[int, int]) -> Region | None:
    """A new object's region from its mask prompt: a square of `frames.ZOOM_CONTEXT` times the
    mask's extent (at least `frames.ZOOM_MIN_SIZE`); None for an empty mask or one the
    prompt checks will refuse."""
    array = np.asarray(mask)
    if array.shape == tuple(frame_shape) and array.dtype.kind in "biuf":
        ys, xs = np.nonzero(array)
        if ys.size:
            anchor = [[ys.min(), xs.min()], [ys.max() + 1, xs.max() + 1]]
            return zoom_region(anchor, frame_shape, context=ZOOM_CONTEXT, min_size=ZOOM_MIN_SIZE)
    return None
