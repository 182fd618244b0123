"""One tracking step: a frame, an object, its memories (sam2's or the selective memory).

`FrameTracker` runs sam2's step (`model.sam2_step`) for one object on one frame under
inference autocast, keeping the predicted IoU (which ``track_step`` drops), and chooses the
memories: sam2's own selection (``memory="sam2"``) or SAMed-2's gated recent memory plus the
long-term bank. It also stores memories the way sam2's predictor does (bfloat16) and offers
them to the bank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from sam2.modeling.sam2_base import SAM2Base
from sam2.modeling.sam2_utils import select_closest_cond_frames

from ..model import autocast, sam2_step
from ..model.memory_attention import MemoryKeyCache
from .features import FrameEncoder, FrameFeatures
from .memory import BankEntry, LongTermBank, pooled_key
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


@dataclass(kw_only=True, eq=False, repr=False)
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
    memory_keys : MemoryKeyCache, optional
        Where memory frames' keys and values are kept between frames, one scope per object
        (None: sam2's memory attention projects them on every frame).
    """

    net: SAM2Base
    encoder: FrameEncoder
    device: torch.device
    dtype: torch.dtype
    memory: str
    settings: MemorySettings
    bank: LongTermBank
    num_frames: int
    memory_keys: MemoryKeyCache | None = None
    # the memory encoder's positional encodings (the same for every frame): kept once
    _maskmem_pos_enc: list[torch.Tensor] | None = field(default=None, init=False)

    def encode_memory(self, frame: int, out: dict, *, encoder: FrameEncoder | None = None) -> None:
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
            features, pos_enc = sam2_step.encode_memory(
                self.net,
                levels=feats.levels,
                high_res_masks=high_res,
                object_score_logits=out["object_score_logits"],
                from_points=True,
            )
        self.store_memory(out, features, pos_enc)

    def encode_pending(self, tracks: Iterable[ObjectTrack]) -> None:
        """`encode_memory` for every stored frame of ``tracks`` not encoded yet."""
        with torch.inference_mode():
            for track in tracks:
                for out in (*track.cond.values(), *track.non_cond.values()):
                    if out["maskmem_features"] is None:
                        self.encode_memory(out["frame"], out, encoder=track.encoder)

    def offer_to_bank(
        self, track: ObjectTrack, obj_id: int, frame: int, out: dict, origin: str, key_size: int
    ) -> None:
        """Offer a frame's encoded memory to the long-term bank (unless frozen), keyed by its
        image embedding pooled to ``key_size``; an entry the object made on that frame before
        is replaced."""
        if self.bank.frozen or out["maskmem_features"] is None:
            return
        features = out["maskmem_features"][0].to("cpu", torch.bfloat16)
        key = pooled_key(
            (track.encoder or self.encoder).features(frame).image_embedding(),
            key_size,
        )
        self.bank.check_compatible(tuple(features.shape), tuple(key.shape))
        entry = BankEntry(
            features=features,
            key=key.cpu(),
            confidence=float(out["iou"]),
            obj_id=obj_id,
            origin=origin,
            frame=frame,
        )
        previous = track.bank_uids.get(frame)
        changed = (
            self.bank.replace(previous, entry) if previous is not None else self.bank.offer(entry)
        )
        if changed:
            track.bank_uids[frame] = entry.uid

    def store_memory(self, out: dict, features: torch.Tensor, pos_enc) -> None:
        # bfloat16 storage, as sam2's predictor does: half the memory, and the "sam2" mode
        # then reproduces its numbers exactly.
        out["maskmem_features"] = features.to(torch.bfloat16)
        if self._maskmem_pos_enc is None:
            self._maskmem_pos_enc = [p[:1].clone() for p in pos_enc]
        out["maskmem_pos_enc"] = self._maskmem_pos_enc

    def forget_keys(self, obj_id: int | None = None) -> None:
        """Drop the kept memory keys of ``obj_id`` (None: of every object)."""
        if self.memory_keys is None:
            return
        if obj_id is None:
            self.memory_keys.clear()
        else:
            self.memory_keys.drop(obj_id)

    def infer(
        self,
        *,
        track: ObjectTrack,
        obj_id: int,
        frame: int,
        reverse: bool,
        run_mem_encoder: bool | Callable[[dict], bool],
        is_init_cond: bool = False,
        point_inputs: dict[str, torch.Tensor] | None = None,
        mask_inputs: torch.Tensor | None = None,
        prompt_logits: torch.Tensor | None = None,
    ) -> dict:
        """One frame, one object: sam2's step with the predicted IoU kept.

        ``run_mem_encoder`` may be a function of the output (``iou``, ``score``) deciding
        whether to encode its memory. ``prompt_logits`` (1, 1, S/4, S/4): the decoder's mask
        prompt (the frame's previous logits with new clicks, or carried logits).
        """
        feats = (track.encoder or self.encoder).features(frame)
        keys = None if self.memory_keys is None else self.memory_keys.scope(obj_id)
        if self.memory == "sam2" or is_init_cond:
            # kept keys are found by the stored memories (converted when projected)
            view = track.output_dict if keys is not None else self.float_memory_view(track, frame)
            memory = sam2_step.Sam2Memory(output_dict=view, num_frames=self.num_frames)
        else:
            memory = partial(
                self.chosen_memory, track=track, obj_id=obj_id, frame=frame, reverse=reverse,
                feats=feats,
            )  # fmt: skip
        with autocast(self.device, self.dtype):
            step = sam2_step.track_step(
                self.net,
                levels=feats.levels,
                frame=frame,
                is_init_cond=is_init_cond,
                memory=memory,
                reverse=reverse,
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                prompt_logits=prompt_logits,
                memory_keys=keys,
            )
            score = step.object_score_logits
            out = {
                "frame": frame,
                "pred_masks": step.low_res_masks.float(),
                "obj_ptr": step.obj_ptr,
                "object_score_logits": score,
                "maskmem_features": None,
                "maskmem_pos_enc": None,
                "iou": float(step.ious.float().max()),
                "score": float(score.float().reshape(-1)[0]),
            }
            if callable(run_mem_encoder):
                run_mem_encoder = run_mem_encoder(out)
            if run_mem_encoder:
                features, pos_enc = sam2_step.encode_memory(
                    self.net,
                    levels=feats.levels,
                    high_res_masks=step.high_res_masks,
                    object_score_logits=score,
                    from_points=point_inputs is not None,
                )
                self.store_memory(out, features, pos_enc)
        return out

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

    def chosen_memory(
        self, *, track: ObjectTrack, obj_id: int, frame: int, reverse: bool, feats: FrameFeatures
    ) -> sam2_step.ChosenMemory:
        """The selective memory's choice for ``frame``.

        Memories: the ``max_conditioning`` closest conditioning frames, the ``recent_frames``
        nearest *remembered* frames on the already-tracked side (gated frames are skipped, so
        the memory holds the last confident frames rather than the last frames), and the top-k
        long-term bank entries of this object (temporal slot of a conditioning frame). Object
        pointers come from the conditioning and remembered frames, at their true distances.
        """
        num_maskmem = self.net.num_maskmem
        mem = self.settings
        selected, _ = select_closest_cond_frames(frame, track.cond, mem.max_conditioning)
        masks: list[tuple[int, torch.Tensor]] = [
            (0, out["maskmem_features"]) for out in selected.values()
        ]
        past = [f for f in track.non_cond if (f > frame if reverse else f < frame)]
        past.sort(key=lambda f: abs(f - frame))
        for rank, past_frame in enumerate(past[: min(mem.recent_frames, num_maskmem - 1)], 1):
            masks.append((num_maskmem - rank, track.non_cond[past_frame]["maskmem_features"]))
        if mem.top_k > 0 and len(self.bank):
            key = pooled_key(feats.image_embedding(), mem.key_size)
            self.bank.check_compatible(tuple(masks[0][1].shape[1:]), tuple(key.shape))
            for entry in self.bank.retrieve(key, mem.top_k, obj_id):
                masks.append((0, entry.features[None]))
        return sam2_step.ChosenMemory(
            masks=masks,
            mask_pos_enc=self._maskmem_pos_enc,
            cond_pointers={t: out["obj_ptr"] for t, out in selected.items()},
            recent_pointers=[(t, track.non_cond[t]["obj_ptr"]) for t in past],
            num_frames=self.num_frames,
        )
