"""The one adapter to sam2's `SAM2Base` internals: image features and a frame's tracking step.

sam2 has no public per-frame API below its predictors (which keep their own state and run
under ``torch.inference_mode``), so the engine and training drive ``SAM2Base`` internals; they
do it only through this module (`encode_images` for the features), so that a sam2 upgrade
touches this file alone.

The step, as ``SAM2Base._track_step`` runs it: the frame's features conditioned on memories
(`conditioned_features`: sam2's choice of memories or one the caller made) -> the SAM heads
(`decode`) or a mask prompt used as the output -> masks, predicted IoU, object pointer; then
`encode_memory` on the mask the caller settles on. Nothing here opens a context: gradients,
inference mode and autocast are the caller's (training runs with gradients, the engine under
inference mode and autocast).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from sam2.modeling.sam2_base import SAM2Base
from sam2.modeling.sam2_utils import get_1d_sine_pe, select_closest_cond_frames

from . import memory_attention
from .memory_attention import KeyScope, MemoryFrame

FrameOutputs = Mapping[str, Mapping[int, dict]]


class FeatureLevels(NamedTuple):
    """Image features of a batch of B frames in sam2's flattened layout.

    Attributes
    ----------
    vision_feats : list of Tensor
        Per feature level, highest resolution first, ``(H_l * W_l, B, C_l)``.
    vision_pos_embeds : list of Tensor
        Their positional encodings, same shapes.
    feat_sizes : list of (int, int)
        ``(H_l, W_l)`` of each level; the last one is the ``S/16`` grid memory works on.
    """

    vision_feats: list[torch.Tensor]
    vision_pos_embeds: list[torch.Tensor]
    feat_sizes: list[tuple[int, int]]

    @classmethod
    def from_maps(
        cls, maps: Sequence[torch.Tensor], pos_maps: Sequence[torch.Tensor]
    ) -> FeatureLevels:
        """From `encode_images`' maps and positional maps, each ``(B, C_l, H_l, W_l)``."""
        return cls(
            [x.flatten(2).permute(2, 0, 1) for x in maps],
            [x.flatten(2).permute(2, 0, 1) for x in pos_maps],
            [(int(x.shape[-2]), int(x.shape[-1])) for x in pos_maps],
        )

    def select(self, index: torch.Tensor) -> FeatureLevels:
        """The features of the frames ``index`` (a 1-D index into the batch)."""
        return FeatureLevels(
            [x[:, index] for x in self.vision_feats],
            [x[:, index] for x in self.vision_pos_embeds],
            self.feat_sizes,
        )


@dataclass(frozen=True)
class Sam2Memory:
    """sam2's own choice of memories: its ``max_cond_frames_in_attn`` closest conditioning
    frames, the ``num_maskmem - 1`` frames just before (after, in reverse) and their pointers.

    Attributes
    ----------
    output_dict : mapping
        sam2's ``{"cond_frame_outputs": {frame: out}, "non_cond_frame_outputs": {...}}``; each
        ``out`` holds ``maskmem_features`` ``(B, mem_dim, S/16, S/16)``, ``maskmem_pos_enc``
        and ``obj_ptr`` ``(B, C)``.
    num_frames : int
        Length of the stack (bounds the pointers sam2 looks back on).
    """

    output_dict: FrameOutputs
    num_frames: int


@dataclass(frozen=True)
class ChosenMemory:
    """Memories the caller chose (SAMed-2's selective memory), laid out as sam2 lays out its own.

    Attributes
    ----------
    masks : sequence of (int, Tensor)
        ``(t_pos, maskmem_features (1, mem_dim, S/16, S/16))`` in attention order; ``t_pos`` is
        sam2's temporal slot: 0 for conditioning (and long-term) memories, ``num_maskmem - k``
        for the k-th nearest recent one.
    mask_pos_enc : sequence of Tensor
        The memory encoder's positional encodings (the last, ``(1, mem_dim, S/16, S/16)``, is used).
    cond_pointers : mapping of int to Tensor
        ``frame -> obj_ptr (1, C)`` of the chosen conditioning frames.
    recent_pointers : sequence of (int, Tensor)
        ``(frame, obj_ptr (1, C))`` of remembered frames on the tracked side, nearest first;
        those within sam2's pointer reach are used.
    num_frames : int
        Length of the stack.
    """

    masks: Sequence[tuple[int, torch.Tensor]]
    mask_pos_enc: Sequence[torch.Tensor]
    cond_pointers: Mapping[int, torch.Tensor]
    recent_pointers: Sequence[tuple[int, torch.Tensor]]
    num_frames: int


@dataclass(frozen=True)
class StepOutput:
    """The SAM heads' outputs for B frames (``M`` candidate masks: 3 with multimask, else 1).

    Attributes
    ----------
    low_res_multimasks : Tensor
        ``(B, M, S/4, S/4)`` mask logits.
    high_res_multimasks : Tensor
        ``(B, M, S, S)`` mask logits.
    ious : Tensor
        ``(B, M)`` predicted IoU of each candidate (``SAM2Base.track_step`` drops it).
    low_res_masks, high_res_masks : Tensor
        ``(B, 1, S/4, S/4)`` and ``(B, 1, S, S)``: the candidate with the best predicted IoU.
    obj_ptr : Tensor
        ``(B, C)`` object pointer.
    object_score_logits : Tensor
        ``(B, 1)`` object presence logit.
    pix_feat : Tensor
        ``(B, C, S/16, S/16)`` the (memory-conditioned) features the heads ran on, to decode
        correction clicks again without re-running memory attention.
    high_res_features : list of Tensor or None
        The decoder's high-resolution feature maps ``(B, C_l, H_l, W_l)``.
    """

    low_res_multimasks: torch.Tensor
    high_res_multimasks: torch.Tensor
    ious: torch.Tensor
    low_res_masks: torch.Tensor
    high_res_masks: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor
    pix_feat: torch.Tensor
    high_res_features: list[torch.Tensor] | None


def encode_images(
    net: SAM2Base, images: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """sam2's image encoder on ``images`` ``(B, 3, S, S)``.

    Returns
    -------
    maps, pos_maps : list of Tensor
        The ``num_feature_levels`` feature maps the tracking step uses (the decoder's
        high-resolution ones already projected) and their positional encodings, each
        ``(B, C_l, H_l, W_l)``, highest resolution first (`FeatureLevels.from_maps`).
    """
    backbone_out = net.forward_image(images)
    levels = net.num_feature_levels
    return backbone_out["backbone_fpn"][-levels:], backbone_out["vision_pos_enc"][-levels:]


def high_res_features(levels: FeatureLevels) -> list[torch.Tensor] | None:
    """The decoder's high-resolution maps: every level but the last, ``(B, C_l, H_l, W_l)``."""
    return [
        x.permute(1, 2, 0).view(x.size(1), x.size(2), *size)
        for x, size in zip(levels.vision_feats[:-1], levels.feat_sizes[:-1], strict=True)
    ] or None


def conditioned_features(
    net: SAM2Base,
    *,
    levels: FeatureLevels,
    frame: int,
    is_init_cond: bool,
    memory: Sam2Memory | ChosenMemory,
    reverse: bool = False,
    memory_keys: KeyScope | None = None,
) -> torch.Tensor:
    """The top-level features of ``frame`` after memory attention, ``(B, C, S/16, S/16)``.

    An initial conditioning frame (``is_init_cond``, with `Sam2Memory`) attends to sam2's
    no-memory embedding instead of memories. ``reverse``: tracking runs backwards in time.
    ``memory_keys``: where the memory frames' keys and values are kept between frames
    (`model.memory_attention`; same result to float rounding). Used under inference only
    (no gradients, eval mode); otherwise, and with None, sam2's own code runs.
    """
    if memory_keys is not None and not memory_attention.supports_key_cache(net.memory_attention):
        memory_keys = None
    if isinstance(memory, ChosenMemory):
        frames, pointers = _chosen_memories(net, frame, reverse, memory)
        return _attend(net, levels, frames, pointers, memory.num_frames, memory_keys)
    if memory_keys is not None and not is_init_cond and net.num_maskmem > 0:
        frames, pointers = _sam2s_memories(net, frame, reverse, memory)
        return _attend(net, levels, frames, pointers, memory.num_frames, memory_keys)
    return net._prepare_memory_conditioned_features(
        frame_idx=frame,
        is_init_cond_frame=is_init_cond,
        current_vision_feats=levels.vision_feats[-1:],
        current_vision_pos_embeds=levels.vision_pos_embeds[-1:],
        feat_sizes=levels.feat_sizes[-1:],
        output_dict=memory.output_dict,
        num_frames=memory.num_frames,
        track_in_reverse=reverse,
    )


def decode(
    net: SAM2Base,
    *,
    pix_feat: torch.Tensor,
    high_res_features: list[torch.Tensor] | None,
    is_init_cond: bool,
    point_inputs: dict[str, torch.Tensor] | None = None,
    mask_inputs: torch.Tensor | None = None,
) -> StepOutput:
    """sam2's SAM heads on ``pix_feat``, with multimask output where sam2 uses it.

    ``point_inputs``: ``point_coords`` ``(B, P, 2)`` in input pixels (x, y) and
    ``point_labels`` ``(B, P)`` int32; ``mask_inputs``: ``(B, 1, S/4, S/4)`` logits (or
    ``(B, 1, S, S)``, resized by the prompt encoder) as the mask prompt.
    """
    heads = net._forward_sam_heads(
        backbone_features=pix_feat,
        point_inputs=point_inputs,
        mask_inputs=mask_inputs,
        high_res_features=high_res_features,
        multimask_output=net._use_multimask(is_init_cond, point_inputs),
    )
    return StepOutput(*heads, pix_feat=pix_feat, high_res_features=high_res_features)


def track_step(
    net: SAM2Base,
    *,
    levels: FeatureLevels,
    frame: int,
    is_init_cond: bool,
    memory: Sam2Memory | Callable[[], ChosenMemory],
    reverse: bool = False,
    point_inputs: dict[str, torch.Tensor] | None = None,
    mask_inputs: torch.Tensor | None = None,
    prompt_logits: torch.Tensor | None = None,
    memory_keys: KeyScope | None = None,
) -> StepOutput:
    """One frame's step, as ``SAM2Base._track_step`` (without the memory encoder).

    Parameters
    ----------
    net : SAM2Base
    levels : FeatureLevels
        The frames' image features (batch B).
    frame : int
        Index of the frame in its stack (memories are placed in time relative to it).
    is_init_cond : bool
        The first prompted frame of an object: no memory is used.
    memory : Sam2Memory or callable
        sam2's choice of memories, or a function returning the caller's `ChosenMemory`
        (called only when the heads run: a mask prompt used as the output needs no memory).
    reverse : bool
        Tracking runs backwards in time.
    point_inputs : dict, optional
        Clicks (see `decode`).
    mask_inputs : Tensor, optional
        ``(B, 1, S, S)`` mask prompt; nets with ``use_mask_input_as_output_without_sam`` take
        it as the output (logits +-10) and decode only its object pointer.
    prompt_logits : Tensor, optional
        ``(B, 1, S/4, S/4)`` logits given to the decoder as its mask prompt instead of
        ``mask_inputs``: the previous logits of the frame with new clicks (sam2's
        ``prev_sam_mask_logits``), or a neighbour's logits carried onto a tracked frame.
    memory_keys : KeyScope, optional
        Keys and values of memory frames kept between frames (see `conditioned_features`).

    Returns
    -------
    StepOutput
    """
    high_res = high_res_features(levels)
    if mask_inputs is not None and net.use_mask_input_as_output_without_sam:
        pix_feat = levels.vision_feats[-1].permute(1, 2, 0)
        pix_feat = pix_feat.view(-1, net.hidden_dim, *levels.feat_sizes[-1])
        heads = net._use_mask_as_output(pix_feat, high_res, mask_inputs)
        return StepOutput(*heads, pix_feat=pix_feat, high_res_features=high_res)
    pix_feat = conditioned_features(
        net,
        levels=levels,
        frame=frame,
        is_init_cond=is_init_cond,
        memory=memory if isinstance(memory, Sam2Memory) else memory(),
        reverse=reverse,
        memory_keys=memory_keys,
    )
    return decode(
        net,
        pix_feat=pix_feat,
        high_res_features=high_res,
        is_init_cond=is_init_cond,
        point_inputs=point_inputs,
        mask_inputs=prompt_logits if prompt_logits is not None else mask_inputs,
    )


def encode_memory(
    net: SAM2Base,
    *,
    levels: FeatureLevels,
    high_res_masks: torch.Tensor,
    object_score_logits: torch.Tensor,
    from_points: bool,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """sam2's memory encoder on a frame's mask.

    Parameters
    ----------
    levels : FeatureLevels
        The frames' image features (batch B).
    high_res_masks : Tensor
        ``(B, 1, S, S)`` mask logits.
    object_score_logits : Tensor
        ``(B, 1)``: absent objects get sam2's no-object embedding.
    from_points : bool
        The mask came from clicks (sam2 then binarises it in eval mode).

    Returns
    -------
    features : Tensor
        ``(B, mem_dim, S/16, S/16)`` mask memory.
    pos_enc : list of Tensor
        Its positional encodings.
    """
    return net._encode_new_memory(
        current_vision_feats=levels.vision_feats,
        feat_sizes=levels.feat_sizes,
        pred_masks_high_res=high_res_masks,
        object_score_logits=object_score_logits,
        is_mask_from_pts=from_points,
    )


def _sam2s_memories(
    net: SAM2Base, frame: int, reverse: bool, memory: Sam2Memory
) -> tuple[list[MemoryFrame], list[tuple[int, torch.Tensor]]]:
    """sam2's choice of memories and object pointers for ``frame`` (step 1 of
    ``SAM2Base._prepare_memory_conditioned_features``, for a frame that is not an initial
    conditioning frame): its closest conditioning frames at slot 0, the ``num_maskmem - 1``
    frames before it (after, in reverse; every ``memory_temporal_stride_for_eval``-th beyond
    the nearest) at slots 1.., and pointers at their signed or absolute distances."""
    outputs = memory.output_dict
    selected, unselected = select_closest_cond_frames(
        frame, outputs["cond_frame_outputs"], net.max_cond_frames_in_attn
    )
    chosen = [(0, out) for out in selected.values()]
    stride = 1 if net.training else net.memory_temporal_stride_for_eval
    for t_pos in range(1, net.num_maskmem):
        t_rel = net.num_maskmem - t_pos  # frames before the current one
        if t_rel == 1:
            previous = frame + t_rel if reverse else frame - t_rel
        elif reverse:
            previous = -(-(frame + 2) // stride) * stride + (t_rel - 2) * stride
        else:
            previous = ((frame - 2) // stride) * stride - (t_rel - 2) * stride
        out = outputs["non_cond_frame_outputs"].get(previous, None)
        if out is None:
            out = unselected.get(previous, None)
        chosen.append((t_pos, out))
    frames = [
        MemoryFrame(out["maskmem_features"], out["maskmem_pos_enc"][-1], t_pos)
        for t_pos, out in chosen
        if out is not None
    ]

    pointers: list[tuple[int, torch.Tensor]] = []
    if net.use_obj_ptrs_in_encoder:
        max_ptrs = min(memory.num_frames, net.max_obj_ptrs_in_encoder)
        sign = -1 if reverse else 1
        pointers = [
            ((frame - t) * sign if net.use_signed_tpos_enc_to_obj_ptrs else abs(frame - t),
             out["obj_ptr"])
            for t, out in selected.items()
            if net.training
            or not net.only_obj_ptrs_in_the_past_for_eval
            or (t >= frame if reverse else t <= frame)
        ]  # fmt: skip
        for t_diff in range(1, max_ptrs):
            t = frame + t_diff if reverse else frame - t_diff
            if t < 0 or t >= memory.num_frames:
                break
            out = outputs["non_cond_frame_outputs"].get(t, unselected.get(t, None))
            if out is not None:
                pointers.append((t_diff, out["obj_ptr"]))
    return frames, pointers


def _chosen_memories(
    net: SAM2Base, frame: int, reverse: bool, memory: ChosenMemory
) -> tuple[list[MemoryFrame], list[tuple[int, torch.Tensor]]]:
    """The caller's memories with sam2's temporal encodings of memories and pointers
    (`Sam2Memory`'s layout, for one frame)."""
    pos_enc = memory.mask_pos_enc[-1]
    frames = [MemoryFrame(features, pos_enc, t_pos) for t_pos, features in memory.masks]
    pointers: list[tuple[int, torch.Tensor]] = []
    if net.use_obj_ptrs_in_encoder:
        max_ptrs = min(memory.num_frames, net.max_obj_ptrs_in_encoder)
        sign = -1 if reverse else 1
        pointers = [
            ((frame - t) * sign if net.use_signed_tpos_enc_to_obj_ptrs else abs(frame - t), ptr)
            for t, ptr in memory.cond_pointers.items()
            if not net.only_obj_ptrs_in_the_past_for_eval or (t >= frame if reverse else t <= frame)
        ]
        pointers += [
            (abs(frame - t), ptr)
            for t, ptr in memory.recent_pointers
            if 0 < abs(frame - t) < max_ptrs
        ]
    return frames, pointers


def _attend(
    net: SAM2Base,
    levels: FeatureLevels,
    frames: Sequence[MemoryFrame],
    pointers: Sequence[tuple[int, torch.Tensor]],
    num_frames: int,
    memory_keys: KeyScope | None,
) -> torch.Tensor:
    """Memory attention of the current frames to ``frames`` and ``pointers``, with the
    memories' keys and values kept in ``memory_keys`` (None: sam2's `MemoryAttention` on the
    concatenated memory tokens)."""
    vision = levels.vision_feats[-1]
    device, dtype = vision.device, vision.dtype
    batch, channels = vision.shape[1], net.hidden_dim
    height, width = levels.feat_sizes[-1]
    ptr_tokens, ptr_pos = _pointer_tokens(net, pointers, num_frames, batch, device, dtype)
    if memory_keys is not None:
        conditioned = memory_attention.attend(
            net.memory_attention,
            curr=vision,
            curr_pos=levels.vision_pos_embeds[-1],
            frames=frames,
            tpos_enc=net.maskmem_tpos_enc,
            pointers=ptr_tokens,
            pointer_pos=ptr_pos,
            scope=memory_keys,
        )
    else:
        to_cat, to_cat_pos = [], []
        for item in frames:
            to_cat.append(item.features.to(device, dtype).flatten(2).permute(2, 0, 1))
            pos = item.pos_enc.to(device).flatten(2).permute(2, 0, 1).to(dtype)
            to_cat_pos.append(pos + net.maskmem_tpos_enc[net.num_maskmem - item.t_pos - 1])
        if ptr_tokens is not None:
            to_cat.append(ptr_tokens)
            to_cat_pos.append(ptr_pos)
        conditioned = net.memory_attention(
            curr=[vision],
            curr_pos=[levels.vision_pos_embeds[-1]],
            memory=torch.cat(to_cat, dim=0),
            memory_pos=torch.cat(to_cat_pos, dim=0),
            num_obj_ptr_tokens=0 if ptr_tokens is None else ptr_tokens.shape[0],
        )
    return conditioned.permute(1, 2, 0).view(batch, channels, height, width)


def _pointer_tokens(
    net: SAM2Base,
    pointers: Sequence[tuple[int, torch.Tensor]],
    num_frames: int,
    batch: int,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Object pointers ``(distance, obj_ptr (B, C))`` as memory tokens ``(P, B, mem_dim)``
    and their temporal encodings (sam2's: a sine of the distance over the pointer reach,
    projected; a pointer wider than ``mem_dim`` is split into several tokens)."""
    if not pointers:
        return None, None
    channels = net.hidden_dim
    max_ptrs = min(num_frames, net.max_obj_ptrs_in_encoder)
    positions, ptrs = zip(*pointers, strict=True)
    obj_ptrs = torch.stack(ptrs, dim=0).to(dtype)
    if net.add_tpos_enc_to_obj_ptrs:
        tpos_dim = channels if net.proj_tpos_enc_in_obj_ptrs else net.mem_dim
        obj_pos = torch.tensor(positions, device=device, dtype=torch.float32)
        obj_pos = get_1d_sine_pe(obj_pos / max(max_ptrs - 1, 1), dim=tpos_dim)
        obj_pos = net.obj_ptr_tpos_proj(obj_pos.to(dtype))
        obj_pos = obj_pos.unsqueeze(1).expand(-1, batch, net.mem_dim)
    else:
        obj_pos = obj_ptrs.new_zeros(len(positions), batch, net.mem_dim)
    if net.mem_dim < channels:
        obj_ptrs = obj_ptrs.reshape(-1, batch, channels // net.mem_dim, net.mem_dim)
        obj_ptrs = obj_ptrs.permute(0, 2, 1, 3).flatten(0, 1)
        obj_pos = obj_pos.repeat_interleave(channels // net.mem_dim, dim=0)
    return obj_ptrs, obj_pos
