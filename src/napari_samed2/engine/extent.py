"""Objects that end once: along a depth axis an object fills one unbroken run of slices, so
where its propagated mask goes empty is where it ends, away from its prompts.

A tracker that loses an object can find it again a few slices on, or pick up a look-alike
there, and carry that on through the stack. With `SessionOptions.ends_once` a frame beyond
`EMPTY_RUN` empty ones in the direction of travel (or one the user marked absent) is absent,
without running the network for the object, unless a prompt further on says the object is
there (then the gap is the model's miss, not the object's end). Blank (constant) frames are
passed over: nothing can be seen on them.
"""

from __future__ import annotations

from collections.abc import Container

import torch

from .tracking import ObjectTrack

ABSENT_LOGIT = -1024.0  # sam2's NO_OBJ_SCORE: the mask logits of a frame without the object
# Empty frames in a row that end an object: one bad frame (noise) inside an object's run of
# slices must not end it.
EMPTY_RUN = 2


def has_mask(logits: torch.Tensor | None, threshold: float) -> bool:
    """Whether ``logits`` hold any pixel of the object (above ``threshold``)."""
    return logits is not None and bool((logits > threshold).any())


def ended_before(
    track: ObjectTrack, frame: int, reverse: bool, threshold: float, blank: Container[int] = ()
) -> bool:
    """Whether ``track``'s object ended before ``frame``: empty masks on the `EMPTY_RUN` frames
    just before it in the direction of travel (one, where the user marked it absent), and no
    prompt further on where it is present. ``blank`` frames (constant: nothing can be seen
    there) are passed over: they say nothing about where the object is."""
    step = 1 if reverse else -1
    empty = 0
    before = frame + step
    while empty < EMPTY_RUN:
        if before in blank:
            before += step
            continue
        if before not in track.logits or has_mask(track.logits[before], threshold):
            return False
        if before in track.cond:
            break  # marked absent by the user: no need to wait for a second empty frame
        empty += 1
        before += step
    ahead = [f for f in track.cond if (f < frame if reverse else f > frame)]
    return not any(has_mask(track.logits.get(f), threshold) for f in ahead)


def absent_output(track: ObjectTrack, frame: int, reverse: bool) -> dict:
    """The output of a frame the object has ended before: an empty mask, object score and
    predicted IoU that say so, no memory."""
    before = frame + 1 if reverse else frame - 1
    like = track.logits[before]
    return {
        "frame": frame,
        "pred_masks": torch.full_like(like, ABSENT_LOGIT),
        "obj_ptr": None,
        "object_score_logits": torch.full((1, 1), ABSENT_LOGIT, device=like.device),
        "maskmem_features": None,
        "maskmem_pos_enc": None,
        "iou": 0.0,
        "score": ABSENT_LOGIT,
    }
