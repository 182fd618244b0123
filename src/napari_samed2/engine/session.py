"""`PropagationSession`: prompts on some frames, masks with confidence on every frame.

One session per (image, axis). It runs SAM2's streaming memory through the `sam2` package's
own `SAM2Base` modules (encoder, memory attention, mask decoder, memory encoder); what it adds
is the frame source, the pair-wise feature cache and, in ``memory="selective"`` mode, SAMed-2's
confidence-gated recent memory and long-term bank. ``memory="sam2"`` reproduces
`sam2.sam2_video_predictor.SAM2VideoPredictor` (same memory selection, same bfloat16 storage
of mask memories, same object pointers), which the tests check mask for mask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sam2.modeling.sam2_base import SAM2Base
from sam2.modeling.sam2_utils import get_1d_sine_pe, select_closest_cond_frames
from sam2.utils.misc import concat_points

from ..model import LoadedModel, autocast, has_temporal_adapter
from ..model.registry import IMAGENET_MEAN, IMAGENET_STD
from .errors import PromptError, PropagationError
from .features import FeatureCache, FrameEncoder, FrameFeatures
from .frames import FrameSource, ModelInput
from .memory import BankEntry, LongTermBank, passes_gate, pooled_key
from .results import FrameResult, frame_order, frames_total
from .settings import MEMORY_MODES, SessionSettings

MASK_LOGIT_CLAMP = 32.0  # sam2 clamps previous logits fed back with new clicks


@dataclass
class _ObjectTrack:
    """Everything the session keeps for one object (sam2's per-object output dicts)."""

    cond: dict[int, dict] = field(default_factory=dict)
    non_cond: dict[int, dict] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse
    points: dict[int, dict] = field(default_factory=dict)
    confirmed: set[int] = field(default_factory=set)
    bank_uids: dict[int, int] = field(default_factory=dict)  # corrected frame -> bank entry

    @property
    def output_dict(self) -> dict[str, dict[int, dict]]:
        return {"cond_frame_outputs": self.cond, "non_cond_frame_outputs": self.non_cond}


class PropagationSession:
    """Interactive segmentation of one stack along one axis.

    Parameters
    ----------
    model : LoadedModel or SAM2Base
        From `napari_samed2.model.load_model` (preprocessing, device and dtype come with it) or
        a bare network from `build_model` (then ImageNet mean/std at the net's image size,
        mask threshold 0, the net's device, float32).
    data : array-like
        numpy, dask or zarr array: YX, YXC, ZYX/TYX, TYXC, 4-D/5-D stacks (see `FrameSource`).
        A 2-D image is a one-frame stack whose frame index is 0.
    axis : int
        The propagation axis of ``data``.
    memory : {"selective", "sam2"}
        ``"selective"``: SAMed-2's gated recent memory plus the long-term bank, every prompt a
        conditioning frame. ``"sam2"``: exactly the `sam2` package's video predictor.
    settings : SessionSettings, optional
    bank : LongTermBank, optional
        A long-term bank to use (and update unless frozen); a new empty one by default.
    rgb, position
        Passed to `FrameSource`.
    region : (row0, col0, row1, col1), optional
        Show the model only this part of every frame (a zoom for small objects, e.g. from
        `frames.zoom_region`); prompts and masks stay in full-frame coordinates and shape.
    """

    def __init__(
        self,
        model: LoadedModel | SAM2Base,
        data,
        axis: int = 0,
        memory: str = "selective",
        *,
        settings: SessionSettings | None = None,
        bank: LongTermBank | None = None,
        rgb: bool | None = None,
        position: Sequence[int] | None = None,
        region: Sequence[int] | None = None,
    ):
        if memory not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {MEMORY_MODES}, got {memory!r}")
        self.memory = memory
        self.settings = settings or SessionSettings()
        if isinstance(model, LoadedModel):
            self.net = model.net
            prep = model.preprocessing
            self.model_input = ModelInput(prep.image_size, prep.mean, prep.std)
            self.mask_threshold = float(prep.mask_threshold)
            self.device, self.dtype = model.device, model.dtype
            self.model_name = model.name
        elif isinstance(model, SAM2Base):
            self.net = model
            size = int(model.image_size)
            self.model_input = ModelInput(size, IMAGENET_MEAN, IMAGENET_STD)
            self.mask_threshold = 0.0
            self.device = next(model.parameters()).device
            self.dtype = torch.float32
            self.model_name = type(model).__name__
        else:
            raise TypeError(
                "model must be a LoadedModel (load_model) or a SAM2Base (build_model), got "
                f"{type(model).__name__}"
            )
        if int(self.net.image_size) != self.model_input.image_size:
            raise ValueError(
                f"preprocessing image_size {self.model_input.image_size} differs from the "
                f"network's {self.net.image_size}"
            )
        self.net.eval()
        self.frames = FrameSource(
            data,
            axis,
            rgb=rgb,
            position=position,
            percentiles=self.settings.percentiles,
            region=region,
        )
        self.cache = FeatureCache(self.settings.cache_bytes)
        self.encoder = FrameEncoder(
            self.net,
            load=lambda frame: self.frames.model_input(frame, self.model_input),
            num_frames=self.frames.num_frames,
            cache=self.cache,
            device=self.device,
            dtype=self.dtype,
            pairs=self.settings.pair_encoding or has_temporal_adapter(self.net),
            prefetch=self.settings.prefetch,
        )
        mem = self.settings.memory
        self.bank = bank if bank is not None else LongTermBank(mem.bank_capacity)
        self.results: dict[int, FrameResult] = {}
        self._tracks: dict[int, _ObjectTrack] = {}
        self._maskmem_pos_enc: list[torch.Tensor] | None = None
        self.last_frame: int | None = None  # last frame a propagate call finished

    # -- facts about the stack -----------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return self.frames.num_frames

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of every frame and of every mask."""
        return self.frames.frame_shape

    @property
    def axis(self) -> int | None:
        return self.frames.axis

    @property
    def object_ids(self) -> list[int]:
        return sorted(self._tracks)

    @property
    def confirmed_frames(self) -> dict[int, list[int]]:
        """Object id to the frames the user prompted or corrected."""
        return {obj: sorted(track.confirmed) for obj, track in sorted(self._tracks.items())}

    def close(self) -> None:
        """Stop the prefetch thread (if any) and drop cached features."""
        self.encoder.close()
        self.cache.clear()

    # -- prompts -------------------------------------------------------------------------------

    def add_points(
        self,
        frame: int,
        obj_id: int,
        points,
        labels,
        *,
        keep_previous: bool = False,
    ) -> FrameResult:
        """Segment ``obj_id`` on ``frame`` from clicks.

        Parameters
        ----------
        points : array-like, shape (N, 2)
            ``(row, col)`` in the frame's pixel coordinates (floats allowed).
        labels : array-like, shape (N,)
            1 for a positive click, 0 for a negative one.
        keep_previous : bool
            Append to the points given earlier on this frame for this object; by default the
            new points replace them (as sam2's ``clear_old_points=True``; the previous mask is
            still fed to the decoder, so callers may pass only the latest click or all).

        Returns
        -------
        FrameResult
            The frame's result, every object included.
        """
        frame, obj_id = self._check_frame(frame), self._check_obj(obj_id)
        coords, label_array = self._check_points(points, labels)
        point_inputs = self._point_inputs(coords, label_array)
        if keep_previous and obj_id in self._tracks:
            point_inputs = concat_points(
                self._tracks[obj_id].points.get(frame),
                point_inputs["point_coords"],
                point_inputs["point_labels"],
            )
        return self._prompt(frame, obj_id, point_inputs=point_inputs)

    def add_box(self, frame: int, obj_id: int, box, points=None, labels=None) -> FrameResult:
        """Segment ``obj_id`` on ``frame`` from a box ``(row0, col0, row1, col1)`` (pixels),
        optionally with clicks (``points``/``labels`` as in `add_points`)."""
        frame, obj_id = self._check_frame(frame), self._check_obj(obj_id)
        box = np.asarray(box, dtype=np.float64).reshape(-1)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            raise PromptError(f"box must be 4 finite numbers (row0, col0, row1, col1), got {box}")
        row0, col0, row1, col1 = box
        rows, cols = self.frame_shape
        if not (row1 > row0 and col1 > col0):
            raise PromptError(f"box {tuple(box)} must have row1 > row0 and col1 > col0")
        if row1 < 0 or col1 < 0 or row0 > rows or col0 > cols:
            raise PromptError(f"box {tuple(box)} lies outside the frame of shape {(rows, cols)}")
        top, left, bottom, right = self.frames.region
        coords = np.array(
            [
                [np.clip(row0, top, bottom), np.clip(col0, left, right)],
                [np.clip(row1, top, bottom), np.clip(col1, left, right)],
            ]
        )
        label_array = np.array([2, 3])
        if points is not None or labels is not None:
            extra, extra_labels = self._check_points(points, labels)
            coords = np.concatenate([coords, extra])
            label_array = np.concatenate([label_array, extra_labels])
        return self._prompt(frame, obj_id, point_inputs=self._point_inputs(coords, label_array))

    def add_mask(self, frame: int, obj_id: int, mask) -> FrameResult:
        """Give ``obj_id``'s mask on ``frame`` (``frame_shape``, nonzero = object)."""
        frame, obj_id = self._check_frame(frame), self._check_obj(obj_id)
        return self._prompt(frame, obj_id, mask_inputs=self._mask_inputs(mask))

    def correct(self, frame: int, obj_id: int, mask) -> FrameResult:
        """Replace ``obj_id``'s mask on ``frame`` with the user's fix.

        The fix becomes a conditioning frame with confidence 1.0 (both memory modes) and, in
        selective mode, a long-term bank entry; later propagation uses it.
        """
        frame, obj_id = self._check_frame(frame), self._check_obj(obj_id)
        return self._prompt(frame, obj_id, mask_inputs=self._mask_inputs(mask), correction=True)

    def remove_object(self, obj_id: int) -> None:
        """Forget ``obj_id``: prompts, memories, results and the bank entries it made here."""
        track = self._tracks.pop(obj_id, None)
        if track is None:
            raise PromptError(
                f"object {obj_id!r} is not in this session; objects: {self.object_ids}"
            )
        if not self.bank.frozen:
            uids = set(track.bank_uids.values())
            self.bank.entries = [e for e in self.bank.entries if e.uid not in uids]
        for frame in list(self.results):
            self.results[frame] = self.results[frame].without(obj_id)
            if not self.results[frame].masks:
                del self.results[frame]

    def reset(self, *, bank: bool = False) -> None:
        """Forget every object, prompt and result (cached features stay: same image).
        ``bank=True`` also empties the long-term bank."""
        self._tracks.clear()
        self.results.clear()
        self.last_frame = None
        if bank:
            self.bank.clear()

    # -- propagation ---------------------------------------------------------------------------

    def resolve_start(self, direction: str = "both", start: int | None = None) -> int:
        """The frame a propagate call starts from (``start`` or the prompted frames)."""
        if not self._tracks or not any(t.cond for t in self._tracks.values()):
            raise PropagationError("no object has a prompt yet; add points, a box or a mask first")
        if start is not None:
            return self._check_frame(start, name="start")
        prompted = [f for t in self._tracks.values() for f in t.cond]
        return max(prompted) if direction == "backward" else min(prompted)

    def frames_total(
        self, direction: str = "both", start: int | None = None, stop: int | None = None
    ) -> int:
        """How many results ``propagate(direction, start, stop)`` will yield."""
        return frames_total(direction, self.resolve_start(direction, start), stop, self.num_frames)

    def propagate(
        self,
        direction: str = "both",
        start: int | None = None,
        stop: int | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Iterator[FrameResult]:
        """Track every object through the stack, yielding each frame's result when it is done.

        Parameters
        ----------
        direction : {"both", "forward", "backward"}
            ``"both"``: forward from ``start`` to the last frame, then backward from
            ``start - 1`` to frame 0.
        start : int, optional
            First frame; default the earliest prompted frame (the latest for ``"backward"``).
        stop : int, optional
            Last frame to process, inclusive (default: the end in that direction). Not
            allowed with ``"both"``.
        cancel : callable, optional
            Checked before each frame; propagation stops when it returns True. Closing the
            generator works too. Either way the session stays consistent: every yielded frame
            is fully stored and a later call can resume (e.g. ``start=session.last_frame + 1``).
        """
        if stop is not None:
            stop = self._check_frame(stop, name="stop")
        begin = self.resolve_start(direction, start)
        try:
            forward, backward = frame_order(direction, begin, stop, self.num_frames)
        except ValueError as error:
            raise PropagationError(str(error)) from error
        self._encode_pending_memories()
        return self._run(forward, backward, cancel)

    def _run(self, forward, backward, cancel) -> Iterator[FrameResult]:
        for frames, reverse in ((forward, False), (backward, True)):
            for position, frame in enumerate(frames):
                if cancel is not None and cancel():
                    return
                if position + 1 < len(frames):
                    self.encoder.prefetch(frames[position + 1])
                with torch.inference_mode():
                    result = self._track_frame(frame, reverse)
                self.last_frame = frame
                yield result

    # -- internals: one frame --------------------------------------------------------------------

    def _track_frame(self, frame: int, reverse: bool) -> FrameResult:
        result = FrameResult(frame=frame)
        gate = self.settings.memory
        for obj_id, track in sorted(self._tracks.items()):
            if not track.cond:
                continue  # an object whose only prompt was removed
            if frame in track.cond:
                out = track.cond[frame]
                in_memory = True
            else:
                if self.memory == "sam2":
                    out = self._infer(track, obj_id, frame, False, None, None, reverse, True)
                    track.non_cond[frame] = out
                    in_memory = True
                else:
                    # the memory encoder runs only for frames that will be remembered
                    out = self._infer(
                        track, obj_id, frame, False, None, None, reverse, self._remember
                    )
                    in_memory = out["maskmem_features"] is not None
                    if in_memory:
                        track.non_cond[frame] = out
                    else:  # a stale memory of an earlier pass must not survive either
                        track.non_cond.pop(frame, None)
                    if in_memory and out["score"] > 0 and out["iou"] >= gate.bank_threshold:
                        self._offer_to_bank(track, obj_id, frame, out, "propagation")
            track.tracked[frame] = reverse
            self._fill(result, obj_id, out, in_memory, frame in track.confirmed)
        self.results[frame] = self.results.get(frame, FrameResult(frame)).merged(result)
        return self.results[frame]

    def _prompt(self, frame, obj_id, point_inputs=None, mask_inputs=None, correction=False):
        track = self._tracks.setdefault(obj_id, _ObjectTrack())
        is_init_cond = frame not in track.tracked
        reverse = False if is_init_cond else track.tracked[frame]
        # sam2 keeps clicks on an already tracked frame as non-conditioning; corrections and
        # every prompt in selective mode are conditioning frames (sam2's
        # add_all_frames_to_correct_as_cond=True).
        is_cond = is_init_cond or correction or self.memory == "selective"
        prev_logits = None
        if point_inputs is not None:
            previous = track.cond.get(frame) or track.non_cond.get(frame)
            if previous is not None:
                prev_logits = previous["pred_masks"].clamp(-MASK_LOGIT_CLAMP, MASK_LOGIT_CLAMP)
            track.points[frame] = point_inputs
        else:
            track.points.pop(frame, None)
        if not is_init_cond:
            # this prompt is decoded with memory: every stored frame must have its memory
            self._encode_pending_memories()
        with torch.inference_mode():
            out = self._infer(
                track,
                obj_id,
                frame,
                is_init_cond,
                point_inputs,
                mask_inputs,
                reverse,
                False,
                prev_logits,
            )
        if correction:
            out["iou"] = 1.0
        out["maskmem_features"] = None  # encoded before the next propagation (sam2's preflight)
        if is_cond:
            track.cond[frame] = out
            track.non_cond.pop(frame, None)
        else:
            track.non_cond[frame] = out
        if self.memory == "selective" or correction:
            track.confirmed.add(frame)
        if correction and self.memory == "selective":
            with torch.inference_mode():
                self._encode_memory(frame, out)
            self._offer_to_bank(track, obj_id, frame, out, "correction")
        result = FrameResult(frame=frame)
        self._fill(result, obj_id, out, True, frame in track.confirmed)
        self.results[frame] = self.results.get(frame, FrameResult(frame)).merged(result)
        return self.results[frame]

    def _encode_pending_memories(self) -> None:
        with torch.inference_mode():
            for track in self._tracks.values():
                for out in (*track.cond.values(), *track.non_cond.values()):
                    if out["maskmem_features"] is None:
                        self._encode_memory(out["frame"], out)

    def _encode_memory(self, frame: int, out: dict) -> None:
        """sam2's preflight: memory of a prompted frame from its (binarised) low-res mask."""
        if out["maskmem_features"] is not None:
            return
        feats = self.encoder.features(frame)
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
        self._store_memory(out, features, pos_enc)

    def _store_memory(self, out: dict, features: torch.Tensor, pos_enc) -> None:
        # bfloat16 storage, as sam2's predictor does: half the memory, and the "sam2" mode
        # then reproduces its numbers exactly.
        out["maskmem_features"] = features.to(torch.bfloat16)
        if self._maskmem_pos_enc is None:
            self._maskmem_pos_enc = [p[:1].clone() for p in pos_enc]
        out["maskmem_pos_enc"] = self._maskmem_pos_enc

    def _infer(
        self,
        track: _ObjectTrack,
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
        feats = self.encoder.features(frame)
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
                        output_dict=self._float_memory_view(track, frame),
                        num_frames=self.num_frames,
                        track_in_reverse=reverse,
                    )
                else:
                    pix_feat = self._selective_features(track, obj_id, frame, reverse, feats)
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
                self._store_memory(out, features, pos_enc)
        return out

    def _remember(self, out: dict) -> bool:
        """The selective gate: whether a propagated frame enters the recent memory."""
        return passes_gate(out["iou"], out["score"], self.settings.memory.gate_threshold)

    def _float_memory_view(self, track: _ObjectTrack, frame: int) -> dict[str, dict[int, dict]]:
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

    def _selective_features(
        self, track: _ObjectTrack, obj_id: int, frame: int, reverse: bool, feats: FrameFeatures
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

        mem = self.settings.memory
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

    def _offer_to_bank(self, track, obj_id, frame, out, origin) -> None:
        if self.bank.frozen or out["maskmem_features"] is None:
            return
        features = out["maskmem_features"][0].to("cpu", torch.bfloat16)
        key = pooled_key(
            self.encoder.features(frame).image_embedding(), self.settings.memory.key_size
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

    def _fill(self, result: FrameResult, obj_id: int, out: dict, in_memory: bool, prompted: bool):
        logits = out["pred_masks"]
        rows, cols = self.frames.region_shape
        if logits.shape[-2:] != (rows, cols):
            logits = F.interpolate(logits, size=(rows, cols), mode="bilinear", align_corners=False)
        inside = (logits[0, 0] > self.mask_threshold).cpu().numpy()
        if (rows, cols) == self.frame_shape:
            result.masks[obj_id] = inside
        else:
            row0, col0, row1, col1 = self.frames.region
            mask = np.zeros(self.frame_shape, dtype=bool)
            mask[row0:row1, col0:col1] = inside
            result.masks[obj_id] = mask
        result.iou[obj_id] = out["iou"]
        result.object_score[obj_id] = out["score"]
        result.in_memory[obj_id] = in_memory
        result.prompted[obj_id] = prompted

    # -- input checks ----------------------------------------------------------------------------

    def _check_frame(self, frame, name: str = "frame") -> int:
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
            raise PromptError(f"{name} must be an integer frame index, got {frame!r}")
        if not 0 <= int(frame) < self.num_frames:
            raise PromptError(
                f"{name} {frame} is out of range; this stack has frames 0..{self.num_frames - 1}"
            )
        return int(frame)

    def _check_obj(self, obj_id) -> int:
        if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)):
            raise PromptError(f"obj_id must be an integer label id, got {obj_id!r}")
        return int(obj_id)

    def _check_points(self, points, labels) -> tuple[np.ndarray, np.ndarray]:
        if points is None or labels is None:
            raise PromptError("points and labels must be given together")
        coords = np.asarray(points, dtype=np.float64)
        if coords.ndim == 1 and coords.size == 2:
            coords = coords[None]
        label_array = np.asarray(labels).reshape(-1)
        if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) == 0:
            raise PromptError(f"points must have shape (N, 2) as (row, col), got {coords.shape}")
        if len(label_array) != len(coords):
            raise PromptError(f"got {len(coords)} points but {len(label_array)} labels")
        if not np.all(np.isin(label_array, (0, 1))):
            raise PromptError(f"labels must be 1 (positive) or 0 (negative), got {label_array}")
        rows, cols = self.frame_shape
        outside = ~np.isfinite(coords).all(axis=1) | (coords[:, 0] < 0) | (coords[:, 1] < 0)
        outside |= (coords[:, 0] > rows) | (coords[:, 1] > cols)
        if outside.any():
            raise PromptError(
                f"points {coords[outside].tolist()} lie outside the frame of shape {(rows, cols)}"
            )
        row0, col0, row1, col1 = self.frames.region
        off = (coords[:, 0] < row0) | (coords[:, 0] > row1) | (coords[:, 1] < col0)
        off |= coords[:, 1] > col1
        if off.any():
            raise PromptError(
                f"points {coords[off].tolist()} lie outside the session's region "
                f"{self.frames.region}"
            )
        return coords, label_array.astype(np.int32)

    def _point_inputs(self, coords: np.ndarray, labels: np.ndarray) -> dict:
        # sam2 takes (x, y) = (col, row), normalised by the frame size, then scaled to the
        # model's input size; the same tensor operations as the predictor keep it bit-exact.
        row0, col0, _, _ = self.frames.region
        local = coords - np.array([row0, col0])
        xy = torch.tensor(local[:, ::-1].copy(), dtype=torch.float32)[None]
        rows, cols = self.frames.region_shape
        xy = xy / torch.tensor([cols, rows]) * self.net.image_size
        return {
            "point_coords": xy.to(self.device),
            "point_labels": torch.tensor(labels, dtype=torch.int32)[None].to(self.device),
        }

    def _mask_inputs(self, mask) -> torch.Tensor:
        array = np.asarray(mask)
        if array.shape != tuple(self.frame_shape):
            raise PromptError(
                f"mask shape {array.shape} does not match the frame shape {self.frame_shape}"
            )
        if array.dtype.kind not in "biuf":
            raise PromptError(f"mask must be boolean or numeric, got dtype {array.dtype}")
        row0, col0, row1, col1 = self.frames.region
        inside = np.ascontiguousarray(array[row0:row1, col0:col1] > 0)
        tensor = torch.from_numpy(inside)[None, None].float()
        size = int(self.net.image_size)
        if tensor.shape[-2:] != (size, size):
            tensor = F.interpolate(
                tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
            tensor = (tensor >= 0.5).float()
        return tensor.to(self.device)
