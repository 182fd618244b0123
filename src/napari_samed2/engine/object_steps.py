"""One object on one frame, prompted or propagated: what the step stores in the object's track
(sam2's conditioning rules, click seeds, the carry policy, the memory gate, bank offers)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..model import with_click_seed
from .carry import CarryPolicy
from .extent import absent_output, ended_before
from .memory import passes_gate
from .prompts import MASK_LOGIT_CLAMP
from .results import FrameResult
from .settings import MemorySettings
from .tracking import FrameTracker, ObjectTrack


def prompt_step(
    tracker: FrameTracker,
    track: ObjectTrack,
    obj_id: int,
    frame: int,
    *,
    memory: str,
    settings: MemorySettings,
    click_seed: bool,
    point_inputs: dict | None = None,
    mask_inputs: torch.Tensor | None = None,
    correction: bool = False,
    encode_pending: Callable[[], None],
    decoded: Callable[[], None],
) -> dict:
    """Decode a prompt (clicks or a mask) of ``obj_id`` on ``frame`` and store it in ``track``.

    ``encode_pending()`` encodes every object's stored frames that have no memory yet (a
    prompt on a tracked frame is decoded with memory); ``decoded()`` is called once the
    logits are in the track; ``settings``: the session's memory settings. Returns the step's
    output (its memory not encoded yet).
    """
    is_init_cond = frame not in track.tracked
    reverse = False if is_init_cond else track.tracked[frame]
    # sam2 keeps clicks on an already tracked frame as non-conditioning; corrections and
    # every prompt in selective mode are conditioning frames (sam2's
    # add_all_frames_to_correct_as_cond=True).
    is_cond = is_init_cond or correction or memory == "selective"
    prev_logits = None
    if point_inputs is not None:
        previous = track.cond.get(frame) or track.non_cond.get(frame)
        if previous is not None:
            prev_logits = previous["pred_masks"].clamp(-MASK_LOGIT_CLAMP, MASK_LOGIT_CLAMP)
        track.points[frame] = point_inputs
        if click_seed:
            prev_logits = with_click_seed(point_inputs, prev_logits, int(tracker.net.image_size))
    else:
        track.points.pop(frame, None)
    if not is_init_cond:
        # this prompt is decoded with memory: every stored frame must have its memory
        encode_pending()
    with torch.inference_mode():
        out = tracker.infer(
            track=track, obj_id=obj_id, frame=frame, reverse=reverse, run_mem_encoder=False,
            is_init_cond=is_init_cond, point_inputs=point_inputs, mask_inputs=mask_inputs,
            prompt_logits=prev_logits,
        )  # fmt: skip
    track.logits[frame] = out["pred_masks"]
    decoded()
    if correction:
        out["iou"] = 1.0
    out["maskmem_features"] = None  # encoded before the next propagation (sam2's preflight)
    if is_cond:
        track.cond[frame] = out
        track.non_cond.pop(frame, None)
    else:
        track.non_cond[frame] = out
    if memory == "selective" or correction:
        track.confirmed.add(frame)
    if correction and memory == "selective":
        with torch.inference_mode():
            tracker.encode_memory(frame, out, encoder=track.encoder)
        tracker.offer_to_bank(track, obj_id, frame, out, "correction", settings.key_size)
    return out


def propagation_step(
    tracker: FrameTracker,
    carry: CarryPolicy,
    track: ObjectTrack,
    obj_id: int,
    frame: int,
    reverse: bool,
    results: dict[int, FrameResult],
    *,
    memory: str,
    settings: MemorySettings,
    region: tuple[int, int, int, int],
    connected: bool,
    motion: bool,
    gate: float,
    ends_once: bool = False,
) -> tuple[dict, bool]:
    """Track ``obj_id`` to ``frame`` (a prompted frame keeps its prompt's output).

    Returns the output and whether the frame is in the object's memory. ``results``: the
    session's results so far (the carry policy reads their confidence); ``settings``: its
    memory settings; ``region``: the part of the frames the object's model input shows;
    ``connected``, ``motion``, ``gate``, ``ends_once``: the session's options
    (`SessionOptions`); with ``ends_once`` a frame beyond the object's end (`extent`) is
    absent without running the network.
    """
    ended = (
        ends_once and frame not in track.cond
        and ended_before(track, frame, reverse, carry.threshold, carry.frames.constant_frames)
    )  # fmt: skip
    if frame in track.cond:
        out = track.cond[frame]
        in_memory = True
    elif ended:
        out = absent_output(track, frame, reverse)
        track.non_cond.pop(frame, None)  # a memory of an earlier pass must not survive
        in_memory = False
    else:
        carried = carry.carried_logits(
            track, obj_id, frame, reverse, results, region=region, motion=motion, gate=gate
        )
        if memory == "sam2":
            out = tracker.infer(
                track=track, obj_id=obj_id, frame=frame, reverse=reverse,
                run_mem_encoder=True, prompt_logits=carried,
            )  # fmt: skip
            track.non_cond[frame] = out
            in_memory = True
        else:
            # the memory encoder runs only for frames that will be remembered
            out = tracker.infer(
                track=track, obj_id=obj_id, frame=frame, reverse=reverse,
                run_mem_encoder=lambda out: passes_gate(out["iou"], out["score"], gate),
                prompt_logits=carried,
            )  # fmt: skip
            in_memory = out["maskmem_features"] is not None
            if in_memory:
                track.non_cond[frame] = out
            else:  # a stale memory of an earlier pass must not survive either
                track.non_cond.pop(frame, None)
            if in_memory and out["score"] > 0 and out["iou"] >= settings.bank_threshold:
                tracker.offer_to_bank(track, obj_id, frame, out, "propagation", settings.key_size)
    track.tracked[frame] = reverse
    if connected and frame not in track.cond and not ended:
        out["pred_masks"] = carry.connected_logits(
            track, obj_id, frame, reverse, out, results, gate
        )
    track.logits[frame] = out["pred_masks"]
    return out, in_memory
