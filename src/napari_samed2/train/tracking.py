"""One SAM2-style training forward pass over a batch of clips, with gradients.

The public predictor methods run under ``torch.inference_mode``, so training drives sam2's
per-frame step (`model.sam2_step`) directly, as SAM2's own training model does: prompts on the
first frame (points, box or mask), tracking through the rest, and correction clicks sampled
from the errors on some frames (those frames then become conditioning frames).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from sam2.modeling.sam2_base import SAM2Base

from ..model import sam2_step
from ..model.click_seed import with_click_seed
from .clips import MIN_OBJECT_AREA, Clip
from .losses import LossTerms, LossWeights, sam2_loss
from .prompts import (
    PointPrompt,
    box_prompt,
    correction_click,
    negative_click_near,
    random_click,
)

MIN_CLICK_AREA = MIN_OBJECT_AREA  # pixels: smaller cross-sections are not prompted
CARRY_CLAMP = 32.0  # the engine clamps carried logits the same way (MASK_LOGIT_CLAMP)


@dataclass(frozen=True)
class PromptSettings:
    """How prompts are simulated (probabilities per clip)."""

    mask: float = 0.1  # the ground-truth mask itself is the prompt
    box: float = 0.3  # otherwise a jittered box ...
    negative: float = 0.2  # ... or a click, plus sometimes a negative click beside the object
    correct_other_frame: float = 0.5  # also correct one tracked frame
    correction_clicks: int = 2  # iterative correction clicks per corrected frame
    from_truth: float = 0.1  # a correction click sampled from the object instead of the error
    tracked_per_clip: int = 0  # objects tracked through each clip (0: all of them)
    click_task: bool = False  # also prompt every object on every frame (decoder only)
    click_task_corrections: int = 1  # correction clicks in the click task
    click_seed: bool = False  # clicks also drawn into the mask prompt (model/click_seed.py)
    carry_mask: bool = False  # tracked frames get the previous frame's logits as mask prompt
    carry_drop: float = 0.1  # ... except on this fraction of them (the engine may lack one)


@dataclass
class ClipOutcome:
    """What one forward pass produced."""

    loss: LossTerms
    frame_dice: np.ndarray  # (T,) mean Dice of the final masks per frame (for the log)
    click_dice: float = float("nan")  # mean Dice of the one-click masks of the click task


def _points_to_tensor(prompts: list[PointPrompt], device: torch.device) -> dict[str, torch.Tensor]:
    """Batch point prompts, padding shorter ones with label -1 (sam2's padding)."""
    length = max(len(p.labels) for p in prompts)
    coords = np.zeros((len(prompts), length, 2), np.float32)
    labels = -np.ones((len(prompts), length), np.int32)
    for row, prompt in enumerate(prompts):
        coords[row, : len(prompt.labels)] = prompt.coords
        labels[row, : len(prompt.labels)] = prompt.labels
    return {
        "point_coords": torch.from_numpy(coords).to(device),
        "point_labels": torch.from_numpy(labels).to(device),
    }


def _first_prompts(
    masks: np.ndarray, rng: np.random.Generator, settings: PromptSettings
) -> tuple[list[PointPrompt] | None, bool]:
    """Prompts for the conditioning frame: (points per item, or None for mask prompts)."""
    draw = rng.random()
    if draw < settings.mask:
        return None, False
    if draw < settings.mask + settings.box:
        return [box_prompt(m, rng) for m in masks], True
    prompts = []
    for mask in masks:
        click = random_click(mask, rng, interior=rng.random() < 0.5)
        if rng.random() < settings.negative:
            negative = negative_click_near(mask, rng)
            if negative is not None:
                click = click.extended(negative)
        prompts.append(click)
    return prompts, False


def _stored_prompts(
    clip: Clip, tracked: torch.Tensor, first: np.ndarray, rng: np.random.Generator
) -> list[PointPrompt] | None:
    """The clip's stored first-frame prompts of the tracked objects (a click sampled from the
    mask for those without one), or None when it has none."""
    if clip.prompts is None:
        return None
    stored = [clip.prompts[int(i)] for i in tracked]
    if all(prompt is None for prompt in stored):
        return None
    return [
        prompt if prompt is not None else random_click(mask, rng, interior=rng.random() < 0.5)
        for prompt, mask in zip(stored, first, strict=True)
    ]


def track_clip(
    net: SAM2Base,
    clip: Clip,
    rng: np.random.Generator,
    settings: PromptSettings = PromptSettings(),
    weights: LossWeights = LossWeights(),  # noqa: B008
) -> ClipOutcome:
    """Run one training forward pass and return the summed loss over frames and steps.

    Parameters
    ----------
    net : SAM2Base
        The network (in train mode for training; any mode works).
    clip : Clip
        ``images`` ``(B, T, 3, S, S)`` on the network's device, ``masks`` ``(N, T, S, S)`` of
        the N objects tracked (``clip.clip_index`` says which clip each belongs to).
    rng : np.random.Generator
        Source of the prompt simulation.
    """
    device = clip.images.device
    clips, frames = clip.batch_size, clip.num_frames
    owner_all = clip.object_clips()
    tracked = _tracked_objects(owner_all, settings.tracked_per_clip)
    owner = owner_all[tracked].to(device)
    batch = len(tracked)
    truth = clip.masks[tracked].to(device)
    truth_np = clip.masks[tracked].cpu().numpy()
    # Clip-major order keeps (t, t+1) of one clip adjacent: the temporal adapter's pairs.
    images = clip.images.reshape(clips * frames, *clip.images.shape[2:])
    levels_all = (
        clip.features
        if clip.features is not None
        else sam2_step.FeatureLevels.from_maps(*sam2_step.encode_images(net, images))
    )
    output_dict: dict[str, dict[int, dict]] = {
        "cond_frame_outputs": {},
        "non_cond_frame_outputs": {},
    }

    points = _stored_prompts(clip, tracked, truth_np[:, 0], rng)
    if points is None:
        # A mask prompt is its own output (no loss on its frame): a one-frame clip needs a
        # click or a box, or it would train nothing.
        first = settings if frames > 1 else replace(settings, mask=0.0)
        points, _ = _first_prompts(truth_np[:, 0], rng, first)
    corrected = {0} if points is not None else set()
    if points is not None and frames > 1 and rng.random() < settings.correct_other_frame:
        corrected.add(int(rng.integers(1, frames)))

    total: LossTerms | None = None
    dice = np.zeros(frames)
    previous_logits = None
    for t in range(frames):
        levels = levels_all.select(owner * frames + t)
        is_cond = t == 0
        point_inputs = _points_to_tensor(points, device) if (is_cond and points) else None
        mask_inputs = truth[:, 0:1].float() if (is_cond and points is None) else None
        carried = (
            previous_logits
            if (settings.carry_mask and not is_cond and rng.random() >= settings.carry_drop)
            else None
        )
        # (sam2's _track_step takes previous logits only with clicks: carried ones go alone)
        prompt_logits = carried if carried is not None else _seed(point_inputs, None, net, settings)
        out = sam2_step.track_step(
            net,
            levels=levels,
            frame=t,
            is_init_cond=is_cond,
            memory=sam2_step.Sam2Memory(output_dict=output_dict, num_frames=frames),
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            prompt_logits=prompt_logits,
        )
        current = {"point_inputs": point_inputs, "mask_inputs": mask_inputs}
        if mask_inputs is None:
            step = sam2_loss(
                out.high_res_multimasks, out.ious, out.object_score_logits, truth[:, t], weights
            )
            total = step if total is None else total + step

        if t in corrected:
            frame_prompts = points if is_cond else None
            for _ in range(settings.correction_clicks):
                predicted = (out.high_res_masks > 0).detach().cpu().numpy()[:, 0]
                clicks = []
                for item in range(batch):
                    reference = (
                        np.zeros_like(predicted[item])
                        if rng.random() < settings.from_truth
                        else predicted[item]
                    )
                    click = correction_click(truth_np[item, t], reference, rng)
                    if click is None:  # exact already: a click on the object changes nothing
                        click = (
                            random_click(truth_np[item, t], rng)
                            if truth_np[item, t].any()
                            else PointPrompt(np.zeros((1, 2), np.float32), np.array([0], np.int32))
                        )
                    clicks.append(click)
                frame_prompts = (
                    clicks
                    if frame_prompts is None
                    else [a.extended(b) for a, b in zip(frame_prompts, clicks, strict=True)]
                )
                point_inputs = _points_to_tensor(frame_prompts, device)
                out = sam2_step.decode(
                    net,
                    pix_feat=out.pix_feat,
                    high_res_features=out.high_res_features,
                    is_init_cond=is_cond,
                    point_inputs=point_inputs,
                    mask_inputs=_seed(point_inputs, out.low_res_masks, net, settings),
                )
                step = sam2_loss(
                    out.high_res_multimasks, out.ious, out.object_score_logits, truth[:, t], weights
                )
                total = step if total is None else total + step

        current["pred_masks"] = out.low_res_masks
        current["pred_masks_high_res"] = out.high_res_masks
        previous_logits = out.low_res_masks.detach().clamp(-CARRY_CLAMP, CARRY_CLAMP)
        current["obj_ptr"] = out.obj_ptr
        current["maskmem_features"], current["maskmem_pos_enc"] = (
            sam2_step.encode_memory(
                net,
                levels=levels,
                high_res_masks=out.high_res_masks,
                object_score_logits=out.object_score_logits,
                from_points=point_inputs is not None,
            )
            if net.num_maskmem > 0  # (sam2's track_step: memoryless nets encode nothing)
            else (None, None)
        )
        # Corrected frames join the conditioning frames, as in SAM2's training.
        key = "cond_frame_outputs" if (is_cond or t in corrected) else "non_cond_frame_outputs"
        output_dict[key][t] = current
        dice[t] = _mean_dice(out.high_res_masks.detach() > 0, truth[:, t])

    if settings.click_task:
        clicks, click_dice = _click_task(net, clip, owner_all, levels_all, rng, settings, weights)
        if clicks is not None:
            total = clicks if total is None else total + clicks
    assert total is not None  # a clicked first frame, or a tracked frame after a mask prompt
    return ClipOutcome(total, dice, click_dice if settings.click_task else float("nan"))


def _seed(point_inputs, prev_logits, net: SAM2Base, settings: PromptSettings):
    """The mask prompt to pass with ``point_inputs``: ``prev_logits`` plus the click seed."""
    if not settings.click_seed:
        return prev_logits
    return with_click_seed(point_inputs, prev_logits, int(net.image_size))


def _tracked_objects(owner: torch.Tensor, per_clip: int) -> torch.Tensor:
    """Indices of the first ``per_clip`` objects of every clip (all when ``per_clip`` is 0)."""
    if per_clip <= 0:
        return torch.arange(len(owner))
    keep = [i for i in range(len(owner)) if int((owner[:i] == owner[i]).sum()) < per_clip]
    return torch.tensor(keep, dtype=torch.long)


def _click_task(
    net: SAM2Base,
    clip: Clip,
    owner: torch.Tensor,
    levels_all: sam2_step.FeatureLevels,
    rng: np.random.Generator,
    settings: PromptSettings,
    weights: LossWeights,
) -> tuple[LossTerms | None, float]:
    """SAM's image task on every frame: each visible object prompted afresh, decoder only.

    The image encoding is shared with the tracking task, so this adds many prompted masks per
    step for the price of the (small) decoder: the way SAM trains with many masks per image.
    """
    device = clip.images.device
    frames = clip.num_frames
    masks = clip.masks.cpu().numpy()
    areas = masks.reshape(masks.shape[0], frames, -1).sum(-1)
    total: LossTerms | None = None
    first_dice: list[float] = []
    no_memory = sam2_step.Sam2Memory(
        output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}, num_frames=1
    )
    for t in range(frames):
        items = np.flatnonzero(areas[:, t] >= MIN_CLICK_AREA)
        if items.size == 0:
            continue
        levels = levels_all.select(owner[items].to(device) * frames + t)
        count = len(items)
        pix_feat = sam2_step.conditioned_features(
            net, levels=levels, frame=0, is_init_cond=True, memory=no_memory
        )
        high_res = sam2_step.high_res_features(levels)
        truth_np = masks[items, t]
        truth = torch.from_numpy(truth_np).to(device)
        prompts, _ = _first_prompts(truth_np, rng, replace(settings, mask=0.0))
        mask_inputs = out = None
        for round_ in range(1 + settings.click_task_corrections):
            if round_ > 0:
                predicted = (out.high_res_masks > 0).detach().cpu().numpy()[:, 0]
                clicks = [
                    correction_click(truth_np[i], predicted[i], rng)
                    or random_click(truth_np[i], rng)
                    for i in range(count)
                ]
                prompts = [a.extended(b) for a, b in zip(prompts, clicks, strict=True)]
                mask_inputs = out.low_res_masks
            point_inputs = _points_to_tensor(prompts, device)
            out = sam2_step.decode(
                net,
                pix_feat=pix_feat,
                high_res_features=high_res,
                is_init_cond=True,
                point_inputs=point_inputs,
                mask_inputs=_seed(point_inputs, mask_inputs, net, settings),
            )
            step = sam2_loss(
                out.high_res_multimasks, out.ious, out.object_score_logits, truth, weights
            )
            total = step if total is None else total + step
            if round_ == 0:
                first_dice.append(_mean_dice(out.high_res_masks.detach() > 0, truth))
    return total, float(np.mean(first_dice)) if first_dice else float("nan")


def _mean_dice(prediction: torch.Tensor, truth: torch.Tensor) -> float:
    prediction = prediction.reshape(prediction.shape[0], -1)
    truth = truth.reshape(truth.shape[0], -1)
    inter = (prediction & truth).sum(-1).float()
    sizes = prediction.sum(-1).float() + truth.sum(-1).float()
    dice = torch.where(sizes > 0, 2 * inter / sizes.clamp(min=1), torch.ones_like(sizes))
    return float(dice.mean())
