"""Logits to masks: an object's low-resolution mask logits over its region as a full-frame
mask, stored in the frame's result, the frame's objects then made disjoint (`overlaps`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .overlaps import resolve_overlaps
from .results import FrameResult
from .tracking import ObjectTrack

Region = tuple[int, int, int, int]  # (row0, col0, row1, col1)


def region_logits(logits: torch.Tensor, region: Region) -> torch.Tensor:
    """Low-resolution mask logits ``(1, 1, h, w)`` -> ``(rows, cols)`` over ``region``."""
    row0, col0, row1, col1 = region
    rows, cols = row1 - row0, col1 - col0
    if logits.shape[-2:] != (rows, cols):
        logits = F.interpolate(logits, size=(rows, cols), mode="bilinear", align_corners=False)
    return logits[0, 0]


def mask_from_logits(
    logits: torch.Tensor, region: Region, frame_shape: tuple[int, int], threshold: float
) -> np.ndarray:
    """The boolean ``frame_shape`` mask of an object whose model input shows ``region``."""
    inside = (region_logits(logits, region) > threshold).cpu().numpy()
    row0, col0, row1, col1 = region
    if inside.shape == frame_shape:
        return inside
    mask = np.zeros(frame_shape, dtype=bool)
    mask[row0:row1, col0:col1] = inside
    return mask


def logits_in(logits: torch.Tensor, region: Region, box) -> np.ndarray:
    """An object's mask logits over ``box`` (frame coordinates); -inf outside its region."""
    row0, col0, row1, col1 = box
    values = np.full((row1 - row0, col1 - col0), -np.inf, np.float32)
    top, left = max(row0, region[0]), max(col0, region[1])
    bottom, right = min(row1, region[2]), min(col1, region[3])
    if top < bottom and left < right:
        logits = region_logits(logits, region)
        values[top - row0 : bottom - row0, left - col0 : right - col0] = (
            logits[top - region[0] : bottom - region[0], left - region[1] : right - region[1]]
            .float()
            .cpu()
            .numpy()
        )
    return values


class ObjectMasks:
    """The masks of a session's objects, from their logits, into its per-frame results.

    Parameters
    ----------
    frame_shape : (rows, cols)
        The shape of every frame and mask.
    view : (row0, col0, row1, col1)
        The session's region: the model input of objects without a zoom of their own.
    threshold : float
        The model's mask threshold.
    """

    def __init__(self, frame_shape: tuple[int, int], view: Region, threshold: float):
        self.frame_shape = frame_shape
        self.view = view
        self.threshold = threshold

    def region(self, track: ObjectTrack | None) -> Region:
        """The part of the frames the model sees for ``track`` (its zoom, or the session's)."""
        return track.region if track is not None and track.region else self.view

    def mask(self, track: ObjectTrack, logits: torch.Tensor) -> np.ndarray:
        return mask_from_logits(logits, self.region(track), self.frame_shape, self.threshold)

    def store(
        self,
        results: dict[int, FrameResult],
        tracks: dict[int, ObjectTrack],
        frame: int,
        outputs: dict[int, tuple[dict, bool, bool]],
        *,
        non_overlap: bool,
    ) -> FrameResult:
        """Merge the objects' new ``outputs`` (object id to output, in memory, prompted) into
        ``results[frame]``, resolve its overlaps and return it."""
        result = FrameResult(frame=frame)
        for obj_id, (out, in_memory, prompted) in outputs.items():
            result.masks[obj_id] = self.mask(tracks[obj_id], out["pred_masks"])
            result.iou[obj_id] = out["iou"]
            result.object_score[obj_id] = out["score"]
            result.in_memory[obj_id] = in_memory
            result.prompted[obj_id] = prompted
        results[frame] = results.get(frame, FrameResult(frame)).merged(result)
        self.resolve(results, tracks, frame, fresh=result.masks, non_overlap=non_overlap)
        return results[frame]

    def forget(
        self,
        results: dict[int, FrameResult],
        tracks: dict[int, ObjectTrack],
        obj_id: int,
        *,
        non_overlap: bool,
    ) -> None:
        """Drop ``obj_id`` from every result (and results left empty); the others get back
        what it had won."""
        for frame in list(results):
            had_it = obj_id in results[frame].masks
            results[frame] = results[frame].without(obj_id)
            if not results[frame].masks:
                del results[frame]
            elif had_it:  # the others get back what it had won
                self.resolve(results, tracks, frame, non_overlap=non_overlap)

    def resolve(
        self,
        results: dict[int, FrameResult],
        tracks: dict[int, ObjectTrack],
        frame: int,
        fresh=(),
        *,
        non_overlap: bool,
    ) -> None:
        """Make the objects' masks on ``frame`` disjoint (``non_overlap``).

        Masks of objects not in ``fresh`` (just decoded) are first rebuilt from their logits:
        an earlier resolution may have trimmed them for an object that has since changed.
        """
        if not non_overlap or frame not in results:
            return
        result = results[frame]
        decoded = [
            obj_id for obj_id in result.masks if obj_id in tracks and frame in tracks[obj_id].logits
        ]
        if len(decoded) < 1:
            return
        raw = {
            obj_id: (
                result.masks[obj_id]
                if obj_id in fresh
                else self.mask(tracks[obj_id], tracks[obj_id].logits[frame])
            )
            for obj_id in decoded
        }
        result.masks.update(
            resolve_overlaps(
                raw,
                lambda obj_id, box: logits_in(
                    tracks[obj_id].logits[frame], self.region(tracks[obj_id]), box
                ),
            )
        )
