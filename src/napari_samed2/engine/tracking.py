"""One tracking step: a frame, an object, its memories (sam2's or the selective memory).

`FrameTracker` runs the `sam2` package's own modules the way ``SAM2Base._track_step`` does,
keeping the predicted IoU (which ``track_step`` drops) and choosing the memories: sam2's own
selection (``memory="sam2"``) or SAMed-2's gated recent memory plus the long-term bank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from sam2.modeling.sam2_base import SAM2Base
from sam2.modeling.sam2_utils import get_1d_sine_pe, select_closest_cond_frames

from ..model import autocast
from .features import FrameEncoder, FrameFeatures
from .memory import LongTermBank, passes_gate, pooled_key
from .settings import MemorySettings


@dataclass
class ObjectTrack:
    """Everything the session keeps for one object (sam2's per-object output dicts).

    ``cond`` (prompted/corrected frames) and ``non_cond`` (remembered propagated frames) map a
    frame to its output: ``pred_masks`` (1, 1, S/4, S/4) float32 logits, ``obj_ptr`` (1, C),
    ``object_score_logits`` (1, 1), ``maskmem_features`` (1, mem_dim, S/16, S/16) bfloat16
    (None until encoded), ``maskmem_pos_enc``, and our ``iou``/``score`` floats and ``frame``.
    """

    cond: dict[int, dict] = field(default_factory=dict)
    non_cond: dict[int, dict] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse
    points: dict[int, dict] = field(default_factory=dict)
    confirmed: set[int] = field(default_factory=set)
    bank_uids: dict[int, int] = field(default_factory=dict)  # corrected frame -> bank entry
    # frame -> latest low-res logits (1, 1, S/4, S/4), for models that carry masks forward
    logits: dict[int, torch.Tensor] = field(default_factory=dict)
    # the object's own zoomed region and its encoder (None: the session's)
    region: tuple[int, int, int, int] | None = None
    encoder: FrameEncoder | None = None

    @property
    def output_dict(self) -> dict[str, dict[int, dict]]:
        return {"cond_frame_outputs": self.cond, "non_cond_frame_outputs": self.non_cond}


class FrameTracker:
    """Runs one object's tracking step on one frame.

    Parameters
    ----------
    net : SAM2Base
    encoder : FrameEncoder
        Where frame features come from (cached).
    device, dtype
        Where and in which precision the network runs.
    memory : {"selective", "sam2"}
    settings : MemorySettings
    bank : LongTermBank
    num_frames : int
    """

    def __init__(
        self,
        net: SAM2Base,
        encoder: FrameEncoder,
        device: torch.device,
        dtype: torch.dtype,
        memory: str,
        settings: MemorySettings,
        bank: LongTermBank,
        num_frames: int,
    ):
        self.net = net
        self.encoder = encoder
        self.device = device
        self.dtype = dtype
        self.memory = memory
        self.settings = settings
        self.bank = bank
        self.num_frames = num_frames
        self._maskmem_pos_enc: list[torch.Tensor] | None = None

    def encode_memory(self, frame: int, out: dict, encoder: FrameEncoder | None = None) -> None:
        """sam2's preflight: memory of a prompted frame from its (binarised) low-res mask."""
        if out["maskmem_features"] is not None:
            return
        feats = (encoder or self.encoder).features(frame)
        size = int(self.net.image_size)
        high_res = F.interpolate(
            out["pred_masks"].to(self.device),
            size=(size, size),
            mode="bilinear",
            align_corners=False,
        )
        with autocast(self.device, self.dtype):
            features, pos_enc = self.net._encode_new_memory(
                current_vision_feats=feats.vision_feats,
                feat_sizes=feats.feat_sizes,
                pred_masks_high_res=high_res,
                object_score_logits=out["object_score_logits"],
                is_mask_from_pts=True,
            )
        self.store_memory(out, features, pos_enc)

    def store_memory(self, out: dict, features: torch.Tensor, pos_enc) -> None:
        # bfloat16 storage, as sam2's predictor does: half the memory, and the "sam2" mode
        # then reproduces its numbers exactly.
        out["maskmem_features"] = features.to(torch.bfloat16)
        if self._maskmem_pos_enc is None:
            self._maskmem_pos_enc = [p[:1].clone() for p in pos_enc]
        out["maskmem_pos_enc"] = self._maskmem_pos_enc

    def infer(
        self,
        track: ObjectTrack,
        obj_id: int,
        frame: int,
        is_init_cond: bool,
        point_inputs,
        mask_inputs,
        reverse: bool,
        run_mem_encoder: bool | Callable[[dict], bool],
        prev_logits=None,
    ) -> dict:
        """One frame, one object: sam2's ``_track_step`` with the predicted IoU kept.

        ``run_mem_encoder`` may be a function of the output (``iou``, ``score``) deciding
        whether to encode its memory.
        """
        net = self.net
        feats = (track.encoder or self.encoder).features(frame)
        vision_feats, pos_embeds, sizes = (
            feats.vision_feats,
            feats.vision_pos_embeds,
            feats.feat_sizes,
        )
        with autocast(self.device, self.dtype):
            high_res_features = [
                x.permute(1, 2, 0).view(x.size(1), x.size(2), *s)
                for x, s in zip(vision_feats[:-1], sizes[:-1], strict=True)
            ] or None
            if mask_inputs is not None and net.use_mask_input_as_output_without_sam:
                pix_feat = vision_feats[-1].permute(1, 2, 0).view(-1, net.hidden_dim, *sizes[-1])
                sam_outputs = net._use_mask_as_output(pix_feat, high_res_features, mask_inputs)
            else:
                if self.memory == "sam2" or is_init_cond:
                    pix_feat = net._prepare_memory_conditioned_features(
                        frame_idx=frame,
                        is_init_cond_frame=is_init_cond,
                        current_vision_feats=vision_feats[-1:],
                        current_vision_pos_embeds=pos_embeds[-1:],
                        feat_sizes=sizes[-1:],
                        output_dict=self.float_memory_view(track, frame),
                        num_frames=self.num_frames,
                        track_in_reverse=reverse,
                    )
                else:
                    pix_feat = self.selective_features(track, obj_id, frame, reverse, feats)
                if prev_logits is not None:
                    mask_inputs = prev_logits
                sam_outputs = net._forward_sam_heads(
                    backbone_features=pix_feat,
                    point_inputs=point_inputs,
                    mask_inputs=mask_inputs,
                    high_res_features=high_res_features,
                    multimask_output=net._use_multimask(is_init_cond, point_inputs),
                )
            _, _, ious, low_res, high_res, obj_ptr, score = sam_outputs
            out = {
                "frame": frame,
                "pred_masks": low_res.float(),
                "obj_ptr": obj_ptr,
                "object_score_logits": score,
                "maskmem_features": None,
                "maskmem_pos_enc": None,
                "iou": float(ious.float().max()),
                "score": float(score.float().reshape(-1)[0]),
            }
            if callable(run_mem_encoder):
                run_mem_encoder = run_mem_encoder(out)
            if run_mem_encoder:
                features, pos_enc = net._encode_new_memory(
                    current_vision_feats=vision_feats,
                    feat_sizes=sizes,
                    pred_masks_high_res=high_res,
                    object_score_logits=score,
                    is_mask_from_pts=point_inputs is not None,
                )
                self.store_memory(out, features, pos_enc)
        return out

    def remember(self, out: dict) -> bool:
        """The selective gate: whether a propagated frame enters the recent memory."""
        return passes_gate(out["iou"], out["score"], self.settings.gate_threshold)

    def float_memory_view(self, track: ObjectTrack, frame: int) -> dict[str, dict[int, dict]]:
        """sam2's output dicts with the mask memories near ``frame`` in the compute dtype.

        Memories are stored in bfloat16 like sam2's predictor does; the predictor then relies
        on ``torch.cat`` promoting them with float32 object pointers, and crashes ("mat1 and
        mat2 must have the same dtype") when a frame has no pointer, e.g. tracking an object
        before its prompted frame. Converting here gives the same numbers without the crash.
        """
        net = self.net
        reach = net.num_maskmem * max(1, net.memory_temporal_stride_for_eval) + 1
        dtype = self.dtype if self.device.type == "cuda" else torch.float32

        def converted(outputs: dict[int, dict], everywhere: bool) -> dict[int, dict]:
            view = {}
            for t, out in outputs.items():
                features = out["maskmem_features"]
                if features is not None and (everywhere or abs(t - frame) <= reach):
                    out = {**out, "maskmem_features": features.to(dtype)}
                view[t] = out
            return view

        return {
            "cond_frame_outputs": converted(track.cond, True),
            "non_cond_frame_outputs": converted(track.non_cond, False),
        }

    def selective_features(
        self, track: ObjectTrack, obj_id: int, frame: int, reverse: bool, feats: FrameFeatures
    ) -> torch.Tensor:
        """Memory-conditioned features from the selective memory.

        Memories: the ``max_conditioning`` closest conditioning frames, the ``recent_frames``
        nearest *remembered* frames on the already-tracked side (gated frames are skipped, so
        the memory holds the last confident frames rather than the last frames), and the top-k
        long-term bank entries of this object (temporal slot of a conditioning frame). Object
        pointers come from the conditioning and remembered frames, at their true distances.
        """
        net = self.net
        vision = feats.vision_feats[-1]
        dtype = vision.dtype
        channels = net.hidden_dim
        height, width = feats.feat_sizes[-1]
        num_maskmem = net.num_maskmem

        mem = self.settings
        selected, _ = select_closest_cond_frames(frame, track.cond, mem.max_conditioning)
        memories: list[tuple[int, torch.Tensor]] = [
            (0, out["maskmem_features"]) for out in selected.values()
        ]
        past = [f for f in track.non_cond if (f > frame if reverse else f < frame)]
        past.sort(key=lambda f: abs(f - frame))
        for rank, past_frame in enumerate(past[: min(mem.recent_frames, num_maskmem - 1)], 1):
            memories.append((num_maskmem - rank, track.non_cond[past_frame]["maskmem_features"]))
        if mem.top_k > 0 and len(self.bank):
            key = pooled_key(feats.image_embedding(), mem.key_size)
            self.bank.check_compatible(tuple(memories[0][1].shape[1:]), tuple(key.shape))
            for entry in self.bank.retrieve(key, mem.top_k, obj_id):
                memories.append((0, entry.features[None]))

        pos_enc = self._maskmem_pos_enc[-1].to(self.device)
        pos_enc = pos_enc.flatten(2).permute(2, 0, 1).to(dtype)
        to_cat, to_cat_pos = [], []
        for t_pos, features in memories:
            to_cat.append(features.to(self.device, dtype).flatten(2).permute(2, 0, 1))
            to_cat_pos.append(pos_enc + net.maskmem_tpos_enc[num_maskmem - t_pos - 1])

        num_ptr_tokens = 0
        if net.use_obj_ptrs_in_encoder:
            max_ptrs = min(self.num_frames, net.max_obj_ptrs_in_encoder)
            sign = -1 if reverse else 1
            pointers = [
                (
                    (frame - t) * sign if net.use_signed_tpos_enc_to_obj_ptrs else abs(frame - t),
                    out["obj_ptr"],
                )
                for t, out in selected.items()
                if not net.only_obj_ptrs_in_the_past_for_eval
                or (t >= frame if reverse else t <= frame)
            ]
            pointers += [
                (abs(frame - t), track.non_cond[t]["obj_ptr"])
                for t in past
                if 0 < abs(frame - t) < max_ptrs
            ]
            if pointers:
                positions, ptrs = zip(*pointers, strict=True)
                obj_ptrs = torch.stack(ptrs, dim=0).to(dtype)
                if net.add_tpos_enc_to_obj_ptrs:
                    tpos_dim = channels if net.proj_tpos_enc_in_obj_ptrs else net.mem_dim
                    obj_pos = torch.tensor(positions, device=self.device, dtype=torch.float32)
                    obj_pos = get_1d_sine_pe(obj_pos / max(max_ptrs - 1, 1), dim=tpos_dim)
                    obj_pos = net.obj_ptr_tpos_proj(obj_pos.to(dtype))
                    obj_pos = obj_pos.unsqueeze(1).expand(-1, 1, net.mem_dim)
                else:
                    obj_pos = obj_ptrs.new_zeros(len(positions), 1, net.mem_dim)
                if net.mem_dim < channels:
                    obj_ptrs = obj_ptrs.reshape(-1, 1, channels // net.mem_dim, net.mem_dim)
                    obj_ptrs = obj_ptrs.permute(0, 2, 1, 3).flatten(0, 1)
                    obj_pos = obj_pos.repeat_interleave(channels // net.mem_dim, dim=0)
                to_cat.append(obj_ptrs)
                to_cat_pos.append(obj_pos)
                num_ptr_tokens = obj_ptrs.shape[0]

        conditioned = net.memory_attention(
            curr=[vision],
            curr_pos=[feats.vision_pos_embeds[-1]],
            memory=torch.cat(to_cat, dim=0),
            memory_pos=torch.cat(to_cat_pos, dim=0),
            num_obj_ptr_tokens=num_ptr_tokens,
        )
        return conditioned.permute(1, 2, 0).view(1, channels, height, width)
