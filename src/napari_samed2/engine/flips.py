"""Flip averaging on a single 2-D image (``SessionOptions.flips``): each prompt is also given to
helper sessions of the image flipped three ways, and the four mask logits, flipped back,
averaged."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from .tracking import ObjectTrack

if TYPE_CHECKING:
    from .session import PropagationSession

FLIPS = ((0,), (1,), (0, 1))  # up-down, left-right, both (`SessionOptions.flips`)

Flip = tuple[int, ...]
FlippedPrompt = Callable[["PropagationSession", Flip], object]


def flip_points(coords, flip: Flip, frame_shape: tuple[int, int]) -> np.ndarray:
    """``(N, 2)`` (row, col) pixel coordinates mirrored along the frame axes in ``flip``."""
    flipped = np.array(coords, dtype=np.float64, copy=True)
    for axis in flip:
        flipped[:, axis] = frame_shape[axis] - 1 - flipped[:, axis]
    return flipped


def flipped_sessions(
    image: np.ndarray, new_session: Callable[[np.ndarray], PropagationSession]
) -> dict[Flip, PropagationSession]:
    """A helper session (``new_session(flipped image)``) for each of the `FLIPS` of ``image``."""
    return {flip: new_session(np.ascontiguousarray(np.flip(image, flip))) for flip in FLIPS}


def points_prompt(
    obj_id: int, coords, labels, keep_previous: bool, frame_shape: tuple[int, int]
) -> FlippedPrompt:
    """`PropagationSession.add_points`'s prompt for the session of one flip."""
    return lambda other, flip: other.add_points(
        0, obj_id, flip_points(coords, flip, frame_shape), labels, keep_previous=keep_previous
    )


def box_prompt(obj_id: int, corners, clicks, labels, frame_shape: tuple[int, int]) -> FlippedPrompt:
    """`PropagationSession.add_box`'s prompt (box ``corners``, optional ``clicks``) for the
    session of one flip."""

    def flipped(other, flip):
        corners_flipped = flip_points(corners, flip, frame_shape)
        box_flipped = [*corners_flipped.min(0), *corners_flipped.max(0)]
        clicks_flipped = None if clicks is None else flip_points(clicks, flip, frame_shape)
        return other.add_box(0, obj_id, box_flipped, clicks_flipped, labels)

    return flipped


def mask_prompt(obj_id: int, mask) -> FlippedPrompt:
    """`PropagationSession.add_mask`'s prompt for the session of one flip."""
    return lambda other, flip: other.add_mask(0, obj_id, np.flip(np.asarray(mask), flip))


def average_flips(
    track: ObjectTrack,
    sessions: dict[Flip, PropagationSession],
    prompt_flipped: FlippedPrompt,
    logits_of: Callable[[PropagationSession], torch.Tensor],
) -> torch.Tensor:
    """Average ``track``'s mask logits on the (only) frame with those of the same prompt on
    the image flipped three ways: ``prompt_flipped(session, flip)`` gives the prompt to the
    session of one flip, ``logits_of(session)`` reads the object's logits there. The average
    becomes the track's logits (and its stored outputs'); it is returned."""
    logits = [track.logits[0]]
    for flip, other in sessions.items():
        prompt_flipped(other, flip)
        logits.append(torch.flip(logits_of(other), [axis + 2 for axis in flip]))
    average = torch.stack(logits).mean(0)
    track.logits[0] = average
    for stored in (track.cond, track.non_cond):
        if 0 in stored:
            stored[0]["pred_masks"] = average
    return average
