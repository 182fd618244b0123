"""`PropagationSession`: prompts on some frames, masks with confidence on every frame.

One session per (image, axis). It runs SAM2's streaming memory through the `sam2` package's
own `SAM2Base` modules (encoder, memory attention, mask decoder, memory encoder); what it adds
is the frame source, the pair-wise feature cache and, in ``memory="selective"`` mode, SAMed-2's
confidence-gated recent memory and long-term bank. ``memory="sam2"`` reproduces
`sam2.sam2_video_predictor.SAM2VideoPredictor` (same memory selection, same bfloat16 storage
of mask memories, same object pointers), which the tests check mask for mask.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from sam2.modeling.sam2_base import SAM2Base
from sam2.utils.misc import concat_points

from ..model import LoadedModel, has_temporal_adapter, with_click_seed
from ..model.registry import IMAGENET_MEAN, IMAGENET_STD
from .connectivity import keep_connected
from .errors import NoPromptError, PromptError, PropagationError, SessionBusyError
from .features import CacheView, FeatureCache, FrameEncoder
from .frames import (
    ZOOM_CONTEXT,
    ZOOM_MIN_SIZE,
    ConstantFrameWarning,
    FrameSource,
    ModelInput,
    zoom_region,
    zoom_scales,
)
from .history import SessionSnapshot, restore_snapshot, take_snapshot
from .memory import BankEntry, LongTermBank, passes_gate, pooled_key
from .motion import object_shift, shift_logits
from .overlaps import resolve_overlaps
from .prompts import (
    check_box,
    check_frame,
    check_mask,
    check_obj,
    check_points,
    mask_inputs,
    point_inputs,
)
from .results import FrameResult, frame_order, frames_total
from .run_log import logged_run
from .settings import MEMORY_MODES, SessionSettings
from .tracking import FrameTracker, ObjectTrack

MASK_LOGIT_CLAMP = 32.0  # sam2 clamps previous logits fed back with new clicks
FLIPS = ((0,), (1,), (0, 1))  # up-down, left-right, both (`flip_average`)


def _one_writer(method):
    """Run a method that changes the session only while nothing else changes it (a running
    propagation above all); otherwise raise `SessionBusyError`."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        with self._writing(method.__name__):
            return method(self, *args, **kwargs)

    return guarded


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
    zoom : bool
        Give every object its own region, chosen at its first prompt: squares of 64, 128, 256
        ... pixels around a click or box up to the whole view are tried and the one where the
        model is most confident is kept (a mask prompt: 4x the mask's extent), so small
        objects are seen magnified. The region then stays fixed for the object; later prompts
        must fall inside it. The objects' encodings share one feature cache.
    non_overlap : bool
        Give each pixel claimed by several objects of a frame to the one with the highest mask
        logit (`overlaps.resolve_overlaps`), as a Labels layer holds one object per pixel.
        Only the returned masks change, not what the memory stores. ``False`` returns every
        object's mask as decoded (as ``SAM2VideoPredictor`` does by default).
    connected : bool
        On a propagated frame, drop the parts of an object's mask that do not overlap its mask
        on the frame it was tracked from (`connectivity.keep_connected`): islands on look-alike
        objects are not shown, nor carried on to later frames. The memory is encoded before
        (from the mask as decoded, as sam2 encodes before filling holes). ``False`` gives
        ``SAM2VideoPredictor``'s masks.
    motion : bool
        For time-lapses and videos, with models that carry the previous frame's mask
        (``carry_mask``): move the carried mask by the object's shift between the two frames,
        estimated by phase correlation around it (`motion.object_shift`), so the prompt sits
        where the object is now. Off for volumes, whose slices change shape rather than place.
    flip_average : bool
        On a single 2-D image (one frame, no zoom, no region), decode every point, box or mask
        prompt also on the image flipped up-down, left-right and both, and average the four
        mask logits (test-time augmentation; the predicted IoU stays the unflipped one). Four
        encodings of the image instead of one. Ignored for stacks.
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
        zoom: bool = False,
        non_overlap: bool = True,
        connected: bool = True,
        motion: bool = False,
        flip_average: bool = True,
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
            self.click_seed = bool(prep.click_seed)
            self.carry_mask = bool(prep.carry_mask)
            self.device, self.dtype = model.device, model.dtype
            self.model_name = model.name
        elif isinstance(model, SAM2Base):
            self.net = model
            size = int(model.image_size)
            self.model_input = ModelInput(size, IMAGENET_MEAN, IMAGENET_STD)
            self.mask_threshold = 0.0
            self.click_seed = False
            self.carry_mask = False
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
        self.zoom = bool(zoom)
        self.non_overlap = bool(non_overlap)
        self.connected = bool(connected)
        self.motion = bool(motion)
        self._grey: dict[int, np.ndarray] = {}  # the last frames motion was estimated on
        self._model = model
        self._flipped: dict[tuple[int, ...], PropagationSession] | None = None
        self._source = {"data": data, "axis": axis, "rgb": rgb, "position": position}
        self._frame_sources: list[FrameSource] = []  # the session's and the zooms'
        self._constant_reported = False  # ConstantFrameWarning is given once per session
        self.frames = self._frame_source(region)
        self.cache = FeatureCache(self.settings.cache_bytes)
        self.encoder = self._frame_encoder(self.frames, self.cache)
        self._zoom_encoders: dict[tuple[int, int, int, int], FrameEncoder] = {}
        mem = self.settings.memory
        self.tracker = FrameTracker(
            net=self.net,
            encoder=self.encoder,
            device=self.device,
            dtype=self.dtype,
            memory=memory,
            settings=mem,
            bank=bank if bank is not None else LongTermBank(mem.bank_capacity),
            num_frames=self.frames.num_frames,
        )
        self.results: dict[int, FrameResult] = {}
        self._tracks: dict[int, ObjectTrack] = {}
        full_view = tuple(self.frames.region) == (0, 0, *self.frame_shape)
        self.flip_average = bool(flip_average) and self.num_frames == 1 and not zoom and full_view
        self.last_frame: int | None = None  # last frame a propagate call finished
        # one writer at a time: an open propagate() generator holds it until it ends
        self._writer = threading.Lock()
        self._writer_call: str | None = None

    # -- facts about the stack -----------------------------------------------------------------

    @property
    def bank(self) -> LongTermBank:
        """The long-term bank this session reads and (unless frozen) writes."""
        return self.tracker.bank

    @bank.setter
    def bank(self, bank: LongTermBank) -> None:
        self.tracker.bank = bank

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

    def region_of(self, obj_id: int) -> tuple[int, int, int, int]:
        """The part of the frames the model sees for ``obj_id`` (its zoom, or the session's)."""
        track = self._tracks.get(obj_id)
        return track.region if track is not None and track.region else self.frames.region

    def close(self) -> None:
        """Stop the prefetch threads (if any) and drop cached features."""
        for other in (self._flipped or {}).values():
            other.close()
        for encoder in (self.encoder, *self._zoom_encoders.values()):
            encoder.close()
        self.cache.clear()

    # -- frame sources and encoders per region ---------------------------------------------------

    def _frame_source(self, region, value_range=None) -> FrameSource:
        source = self._source
        frames = FrameSource(
            source["data"],
            source["axis"],
            rgb=source["rgb"],
            position=source["position"],
            percentiles=self.settings.percentiles,
            region=region,
            value_range=value_range,
        )
        self._frame_sources.append(frames)
        return frames

    def _frame_encoder(self, frames: FrameSource, cache) -> FrameEncoder:
        return FrameEncoder(
            self.net,
            load=lambda frame: frames.model_input(frame, self.model_input),
            num_frames=frames.num_frames,
            cache=cache,
            device=self.device,
            dtype=self.dtype,
            pairs=self.settings.pair_encoding or has_temporal_adapter(self.net),
            prefetch=self.settings.prefetch,
        )

    def _encoder_for(self, region: tuple[int, int, int, int]) -> FrameEncoder:
        if region == self.frames.region:
            return self.encoder
        if region not in self._zoom_encoders:
            # scaled like the session's frames, not by the region's own percentiles
            frames = self._frame_source(region, self.frames.intensity_range())
            self._zoom_encoders[region] = self._frame_encoder(frames, CacheView(self.cache, region))
        return self._zoom_encoders[region]

    def _encoder_of(self, track: ObjectTrack) -> FrameEncoder:
        return track.encoder or self.encoder

    def _encoders_in_use(self) -> list[FrameEncoder]:
        unique = {id(e): e for e in map(self._encoder_of, self._tracks.values())}
        return list(unique.values())

    # -- prompts -------------------------------------------------------------------------------

    @_one_writer
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
        coords, label_array = self._check_points(points, labels, obj_id)

        def inputs(region):
            prompt = self._point_inputs(coords, label_array, region)
            if keep_previous and obj_id in self._tracks:
                prompt = concat_points(
                    self._tracks[obj_id].points.get(frame),
                    prompt["point_coords"],
                    prompt["point_labels"],
                )
            return {"point_inputs": prompt}

        result = self._prompt_fitted(frame, obj_id, coords, inputs)
        if self.flip_average:
            self._average_flips(
                obj_id, lambda other, flip: other.add_points(
                    0, obj_id, _flip_points(coords, flip, self.frame_shape), label_array,
                    keep_previous=keep_previous,
                )
            )  # fmt: skip
            return self.results[frame]
        return result

    @_one_writer
    def add_box(self, frame: int, obj_id: int, box, points=None, labels=None) -> FrameResult:
        """Segment ``obj_id`` on ``frame`` from a box ``(row0, col0, row1, col1)`` (pixels),
        optionally with clicks (``points``/``labels`` as in `add_points`).

        A box partly outside the frame is clipped to it; a box with zero area or wholly
        outside the frame raises `PromptError`.
        """
        frame, obj_id = self._check_frame(frame), self._check_obj(obj_id)
        row0, col0, row1, col1 = check_box(box, self.frame_shape)
        rows, cols = self.frame_shape
        extra = extra_labels = None
        if points is not None or labels is not None:
            extra, extra_labels = self._check_points(points, labels, obj_id)

        def inputs(region):
            top, left, bottom, right = region
            coords = np.array(
                [
                    [np.clip(row0, top, bottom), np.clip(col0, left, right)],
                    [np.clip(row1, top, bottom), np.clip(col1, left, right)],
                ]
            )
            label_array = np.array([2, 3])
            if extra is not None:
                coords = np.concatenate([coords, extra])
                label_array = np.concatenate([label_array, extra_labels])
            return {"point_inputs": self._point_inputs(coords, label_array, region)}

        corners = np.clip([[row0, col0], [row1, col1]], 0, [rows, cols])
        anchor = corners if extra is None else np.concatenate([corners, extra])
        result = self._prompt_fitted(frame, obj_id, anchor, inputs)
        if self.flip_average:

            def flipped(other, flip):
                corners_flipped = _flip_points(corners, flip, self.frame_shape)
                box_flipped = [*corners_flipped.min(0), *corners_flipped.max(0)]
                clicks = None if extra is None else _flip_points(extra, flip, self.frame_shape)
                return other.add_box(0, obj_id, box_flipped, clicks, extra_labels)

            self._average_flips(obj_id, flipped)
            return self.results[frame]
        return result

    @_one_writer
    def add_mask(self, frame: int, obj_id: int, mask) -> FrameResult:
        """Give ``obj_id``'s mask on ``frame`` (``frame_shape``, nonzero = object).

        The mask must not be empty: an empty mask cannot show the model an object. To say
        that a tracked object is absent on a frame, use `correct` with an empty mask.
        """
        frame, obj_id = self._check_frame(frame), self._check_obj(obj_id)
        if not check_mask(mask, self.frame_shape).any():
            raise PromptError(
                f"the mask for object {obj_id} on frame {frame} is empty: an empty mask cannot "
                "prompt an object; to say the object is absent on this frame use correct()"
            )
        result = self._prompt_with_mask(frame, obj_id, mask, correction=False)
        if self.flip_average:
            array = np.asarray(mask)
            self._average_flips(
                obj_id, lambda other, flip: other.add_mask(0, obj_id, np.flip(array, flip))
            )
            return self.results[frame]
        return result

    @_one_writer
    def correct(self, frame: int, obj_id: int, mask) -> FrameResult:
        """Replace ``obj_id``'s mask on ``frame`` with the user's fix.

        The fix becomes a conditioning frame with confidence 1.0 (both memory modes) and, in
        selective mode, a long-term bank entry; later propagation uses it.

        An empty ``mask`` means "the object is absent on this frame" (it has ended, left the
        view or is hidden): the frame is stored as a confidence-1.0 memory of an empty mask
        (sam2 uses a mask prompt as the output, so its object score says "absent" and the
        object pointer is the no-object one), and the following frames are steered towards
        predicting the object absent too. To make it reappear later, prompt or correct a
        frame where it is present.

        ``obj_id`` must be an object of this session (prompted with `add_points`, `add_box`
        or `add_mask`); a correction cannot start a new object.
        """
        frame, obj_id = self._check_frame(frame), self._check_obj(obj_id)
        if obj_id not in self._tracks:
            raise PromptError(
                f"object {obj_id} is not in this session, so it cannot be corrected; objects: "
                f"{self.object_ids} (start a new object with add_points, add_box or add_mask)"
            )
        return self._prompt_with_mask(frame, obj_id, mask, correction=True)

    @_one_writer
    def remove_object(self, obj_id: int) -> None:
        """Forget ``obj_id``: prompts, memories, results and the bank entries it made here."""
        track = self._tracks.pop(obj_id, None)
        if track is None:
            raise PromptError(
                f"object {obj_id!r} is not in this session; objects: {self.object_ids}"
            )
        for other in (self._flipped or {}).values():
            if obj_id in other.object_ids:
                other.remove_object(obj_id)
        if not self.bank.frozen:
            self.bank.remove_entries(track.bank_uids.values())
        for frame in list(self.results):
            had_it = obj_id in self.results[frame].masks
            self.results[frame] = self.results[frame].without(obj_id)
            if not self.results[frame].masks:
                del self.results[frame]
            elif had_it:
                self._resolve_overlaps(frame)  # the others get back what it had won

    @_one_writer
    def reset(self, *, bank: bool = False) -> None:
        """Forget every object, prompt and result (cached features stay: same image).
        ``bank=True`` also empties the long-term bank."""
        for other in (self._flipped or {}).values():
            other.reset(bank=bank)
        self._tracks.clear()
        self.results.clear()
        self.last_frame = None
        if bank:
            self.bank.clear()

    # -- propagation ---------------------------------------------------------------------------

    def resolve_start(self, direction: str = "both", start: int | None = None) -> int:
        """The frame a propagate call starts from (``start`` or the prompted frames)."""
        if not self._tracks or not any(t.cond for t in self._tracks.values()):
            raise NoPromptError("no object has a prompt yet; add points, a box or a mask first")
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

        Raises
        ------
        SessionBusyError
            When another propagation of this session is running. From its first frame until
            it ends (finished, cancelled, closed or failed) the returned generator is the
            session's only writer: prompts, corrections, `remove_object`, `reset` and other
            propagations raise `SessionBusyError` meanwhile, from any thread.
        NoPromptError
            When no object has a prompt yet.
        PropagationError
            For a bad direction, start or stop.
        """
        if self._writer.locked():
            raise self._busy_error("propagate")
        if stop is not None:
            stop = self._check_frame(stop, name="stop")
        begin = self.resolve_start(direction, start)
        try:
            forward, backward = frame_order(direction, begin, stop, self.num_frames)
        except ValueError as error:
            raise PropagationError(str(error)) from error
        return self._run(forward, backward, cancel)

    @logged_run
    def _run(self, forward, backward, cancel) -> Iterator[FrameResult]:
        # The generator is the session's writer from its first frame until it ends, is
        # closed or cancelled, or raises (the ``with`` releases it in every case).
        with self._writing("propagate"):
            self._encode_pending_memories()
            yield from self._track_frames(forward, backward, cancel)
            self._report_constant_frames()

    def _track_frames(self, forward, backward, cancel) -> Iterator[FrameResult]:
        for frames, reverse in ((forward, False), (backward, True)):
            for position, frame in enumerate(frames):
                if cancel is not None and cancel():
                    return
                if position + 1 < len(frames):
                    for encoder in self._encoders_in_use():
                        encoder.prefetch(frames[position + 1])
                with torch.inference_mode():
                    result = self._track_frame(frame, reverse)
                self.last_frame = frame
                yield result

    def _report_constant_frames(self, prompted: int | None = None) -> None:
        """Warn once per session about blank frames (`ConstantFrameWarning`).

        Called when a propagation run ends, naming every blank frame read so far (the run's
        and its prompts'), and after a prompt on a frame that is itself blank (the user
        should know at once). A volume with a hundred empty slices gets one warning, not
        a hundred.
        """
        if self._constant_reported:
            return
        blank: dict[int, str] = {}
        for source in self._frame_sources:
            blank.update(source.constant_frames)
        if not blank or (prompted is not None and prompted not in blank):
            return
        self._constant_reported = True
        frames = sorted(blank)
        first = frames[0]
        noun = "frame is" if len(frames) == 1 else "frames are"
        warnings.warn(
            f"{len(frames)} {noun} blank (constant or all NaN) among the frames read so far "
            f"(of {self.num_frames}): {_frame_ranges(frames)} (frame {first} is "
            f"{blank[first]}); they are segmented as blank images. This warning is given "
            "once per session.",
            ConstantFrameWarning,
            stacklevel=3,
        )

    @contextmanager
    def _writing(self, call: str):
        """Hold the session's writer lock for ``call``; `SessionBusyError` when it is held.

        Never waits: a call from the thread that holds an open propagate() generator would
        wait for ever.
        """
        if not self._writer.acquire(blocking=False):
            raise self._busy_error(call)
        self._writer_call = call
        try:
            yield
        finally:
            self._writer_call = None
            self._writer.release()

    def _busy_error(self, call: str) -> SessionBusyError:
        holder = self._writer_call
        if holder in (None, "propagate"):
            return SessionBusyError(
                f"{call}() was refused: a propagation of this session is running; stop it "
                "first (cancel it or close its generator) or let it finish, then call again"
            )
        return SessionBusyError(
            f"{call}() was refused: this session is busy with {holder}() in another thread; "
            "call again when it has returned"
        )

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
                carried = self._carried_logits(track, obj_id, frame, reverse)
                if self.memory == "sam2":
                    out = self.tracker.infer(
                        track=track, obj_id=obj_id, frame=frame, reverse=reverse,
                        run_mem_encoder=True, prompt_logits=carried,
                    )  # fmt: skip
                    track.non_cond[frame] = out
                    in_memory = True
                else:
                    # the memory encoder runs only for frames that will be remembered
                    out = self.tracker.infer(
                        track=track, obj_id=obj_id, frame=frame, reverse=reverse,
                        run_mem_encoder=self.tracker.remember, prompt_logits=carried,
                    )  # fmt: skip
                    in_memory = out["maskmem_features"] is not None
                    if in_memory:
                        track.non_cond[frame] = out
                    else:  # a stale memory of an earlier pass must not survive either
                        track.non_cond.pop(frame, None)
                    if in_memory and out["score"] > 0 and out["iou"] >= gate.bank_threshold:
                        self._offer_to_bank(track, obj_id, frame, out, "propagation")
            track.tracked[frame] = reverse
            if self.connected and frame not in track.cond:
                out["pred_masks"] = self._connected_logits(track, obj_id, frame, reverse, out)
            track.logits[frame] = out["pred_masks"]
            self._fill(result, obj_id, out, in_memory, frame in track.confirmed)
        self.results[frame] = self.results.get(frame, FrameResult(frame)).merged(result)
        self._resolve_overlaps(frame, fresh=result.masks)
        return self.results[frame]

    def _prompt_fitted(self, frame: int, obj_id: int, anchor, inputs) -> FrameResult:
        """Prompt with ``inputs(region)``; a new object in a zoom session first gets its region.

        The prompt is tried in squares around ``anchor`` (the prompt's points, frame
        coordinates) of 64, 128, 256 ... pixels up to the session's whole view
        (`frames.zoom_scales`); the region where the model is most confident of its mask (its
        predicted IoU, objects it sees as present first) is kept.
        """
        if not self.zoom or obj_id in self._tracks:
            return self._prompt(frame, obj_id, **inputs(self.region_of(obj_id)))
        best, best_score = None, None
        try:
            for region in zoom_scales(anchor, self.frames.region, min_size=ZOOM_MIN_SIZE):
                self._tracks[obj_id] = ObjectTrack(region=region, encoder=self._encoder_for(region))
                result = self._prompt(frame, obj_id, **inputs(region))
                score = (result.object_score[obj_id] > 0, result.iou[obj_id])
                if best_score is None or score > best_score:
                    best, best_score = region, score
                # undo this try (a first prompt touches nothing else: no bank entry, no memory)
                del self._tracks[obj_id]
                self.results[frame] = self.results[frame].without(obj_id)
            self._tracks[obj_id] = ObjectTrack(region=best, encoder=self._encoder_for(best))
            return self._prompt(frame, obj_id, **inputs(best))
        except BaseException:
            # a failed or interrupted first prompt leaves no half-made object behind
            self._tracks.pop(obj_id, None)
            if frame in self.results:
                self.results[frame] = self.results[frame].without(obj_id)
                self._resolve_overlaps(frame)  # undo what the tries trimmed from the others
            raise

    def _prompt_with_mask(self, frame: int, obj_id: int, mask, correction: bool) -> FrameResult:
        region = self.region_of(obj_id)
        placed = self.zoom and obj_id not in self._tracks
        if placed:
            array = np.asarray(mask)
            if array.shape == tuple(self.frame_shape) and array.dtype.kind in "biuf":
                ys, xs = np.nonzero(array)
                if ys.size:
                    anchor = [[ys.min(), xs.min()], [ys.max() + 1, xs.max() + 1]]
                    region = zoom_region(
                        anchor, self.frame_shape, context=ZOOM_CONTEXT, min_size=ZOOM_MIN_SIZE
                    )
                    self._tracks[obj_id] = ObjectTrack(
                        region=region, encoder=self._encoder_for(region)
                    )
        prompt = self._mask_inputs(mask, region)
        if not correction and not prompt.any():
            if placed:
                self._tracks.pop(obj_id, None)  # the region just placed for it: no object
            raise PromptError(
                f"the mask for object {obj_id} on frame {frame} has no pixel the model can see "
                f"in the region {region} at its input size {self.net.image_size}; give a "
                "larger mask or a click"
            )
        return self._prompt(frame, obj_id, mask_inputs=prompt, correction=correction)

    def _prompt(self, frame, obj_id, point_inputs=None, mask_inputs=None, correction=False):
        track = self._tracks.setdefault(obj_id, ObjectTrack())
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
            if self.click_seed:
                prev_logits = with_click_seed(point_inputs, prev_logits, int(self.net.image_size))
        else:
            track.points.pop(frame, None)
        if not is_init_cond:
            # this prompt is decoded with memory: every stored frame must have its memory
            self._encode_pending_memories()
        with torch.inference_mode():
            out = self.tracker.infer(
                track=track, obj_id=obj_id, frame=frame, reverse=reverse, run_mem_encoder=False,
                is_init_cond=is_init_cond, point_inputs=point_inputs, mask_inputs=mask_inputs,
                prompt_logits=prev_logits,
            )  # fmt: skip
        track.logits[frame] = out["pred_masks"]
        self._report_constant_frames(prompted=frame)
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
                self.tracker.encode_memory(frame, out, encoder=self._encoder_of(track))
            self._offer_to_bank(track, obj_id, frame, out, "correction")
        result = FrameResult(frame=frame)
        self._fill(result, obj_id, out, True, frame in track.confirmed)
        self.results[frame] = self.results.get(frame, FrameResult(frame)).merged(result)
        self._resolve_overlaps(frame, fresh=result.masks)
        return self.results[frame]

    def _average_flips(self, obj_id: int, prompt_flipped) -> None:
        """Average ``obj_id``'s mask logits on the (only) frame with those of the same prompt
        on the image flipped three ways (`flip_average`); ``prompt_flipped(session, flip)``
        gives the prompt to the session of one flip."""
        if self._flipped is None:
            raw = self.frames.read(0)
            self._flipped = {
                flip: PropagationSession(
                    self._model,
                    np.ascontiguousarray(np.flip(raw, flip)),
                    axis=0,
                    memory=self.memory,
                    rgb=self.frames.rgb,
                    non_overlap=False,
                    connected=False,
                    flip_average=False,
                )
                for flip in FLIPS
            }
            for other in self._flipped.values():
                other._constant_reported = True  # the same image: this session warns for it
        track = self._tracks[obj_id]
        logits = [track.logits[0]]
        for flip, other in self._flipped.items():
            prompt_flipped(other, flip)
            logits.append(torch.flip(other._tracks[obj_id].logits[0], [axis + 2 for axis in flip]))
        average = torch.stack(logits).mean(0)
        track.logits[0] = average
        for stored in (track.cond, track.non_cond):
            if 0 in stored:
                stored[0]["pred_masks"] = average
        self.results[0].masks[obj_id] = self._mask_from_logits(obj_id, average)
        self._resolve_overlaps(0, fresh=(obj_id,))

    def _carried_logits(self, track: ObjectTrack, obj_id: int, frame: int, reverse: bool):
        """The neighbour's mask logits (the frame tracked just before), for carry-mask models.

        With the selective memory a neighbour whose mask failed the confidence gate is passed
        over for the nearest confident frame behind it (`MemorySettings.carry_lookback`): one
        bad frame must not hand its wrong mask to every frame after it.
        """
        if not self.carry_mask:
            return None
        source = self._carry_source(track, obj_id, frame, reverse)
        logits = track.logits.get(source)
        if logits is None:
            return None
        logits = logits.clamp(-MASK_LOGIT_CLAMP, MASK_LOGIT_CLAMP)
        return self._follow_motion(obj_id, logits, source, frame) if self.motion else logits

    def _follow_motion(self, obj_id: int, logits: torch.Tensor, source: int, frame: int):
        """``logits`` (the object's mask on ``source``) moved by the object's shift from
        ``source`` to ``frame`` (`motion`); unchanged when no shift can be estimated."""
        inside = (logits[0, 0] > self.mask_threshold).cpu().numpy()
        if not inside.any():
            return logits
        row0, col0, row1, col1 = self.region_of(obj_id)
        rows, cols = row1 - row0, col1 - col0
        scale_r, scale_c = rows / inside.shape[0], cols / inside.shape[1]
        ys, xs = np.nonzero(inside)
        box = (
            int(ys.min() * scale_r),
            int(xs.min() * scale_c),
            int(np.ceil((ys.max() + 1) * scale_r)),
            int(np.ceil((xs.max() + 1) * scale_c)),
        )
        before = self._grey_frame(source)[row0:row1, col0:col1]
        after = self._grey_frame(frame)[row0:row1, col0:col1]
        shift = object_shift(before, after, box)
        if shift is None:
            return logits
        return shift_logits(logits, shift[0] / scale_r, shift[1] / scale_c)

    def _grey_frame(self, frame: int) -> np.ndarray:
        """A frame as the model sees its intensities (one channel), for motion estimates; the
        last few are kept (every object of a step compares the same two frames)."""
        if frame not in self._grey:
            if len(self._grey) >= 4:
                self._grey.pop(next(iter(self._grey)))
            self._grey[frame] = self.frames.scaled(frame).mean(axis=-1, dtype=np.float32)
        return self._grey[frame]

    def _carry_source(self, track: ObjectTrack, obj_id: int, frame: int, reverse: bool) -> int:
        """The frame whose mask ``frame`` is tracked from: the one just before (in the
        direction of travel) or, with the selective memory, the nearest confident one."""
        step = 1 if reverse else -1
        if self.memory == "selective":
            for distance in range(1, self.settings.memory.carry_lookback + 1):
                candidate = frame + step * distance
                if candidate not in track.logits:
                    break
                if self._confident(track, obj_id, candidate):
                    return candidate
        return frame + step

    def _connected_logits(self, track, obj_id: int, frame: int, reverse: bool, out: dict):
        """The frame's logits without the parts that do not touch the object's mask on the
        frame it was tracked from (`connected`)."""
        reference = track.logits.get(self._carry_source(track, obj_id, frame, reverse))
        if reference is None or reference.shape != out["pred_masks"].shape:
            return out["pred_masks"]
        return keep_connected(out["pred_masks"], reference, self.mask_threshold)

    def _confident(self, track: ObjectTrack, obj_id: int, frame: int) -> bool:
        """Whether the object's mask on ``frame`` was prompted or passed the memory gate."""
        if frame in track.cond:
            return True
        result = self.results.get(frame)
        if result is None or obj_id not in result.iou:
            return False
        gate = self.settings.memory.gate_threshold
        return passes_gate(result.iou[obj_id], result.object_score[obj_id], gate)

    def _encode_pending_memories(self) -> None:
        with torch.inference_mode():
            for track in self._tracks.values():
                for out in (*track.cond.values(), *track.non_cond.values()):
                    if out["maskmem_features"] is None:
                        self.tracker.encode_memory(
                            out["frame"], out, encoder=self._encoder_of(track)
                        )

    def _offer_to_bank(self, track, obj_id, frame, out, origin) -> None:
        if self.bank.frozen or out["maskmem_features"] is None:
            return
        features = out["maskmem_features"][0].to("cpu", torch.bfloat16)
        key = pooled_key(
            self._encoder_of(track).features(frame).image_embedding(),
            self.settings.memory.key_size,
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
        result.masks[obj_id] = self._mask_from_logits(obj_id, out["pred_masks"])
        result.iou[obj_id] = out["iou"]
        result.object_score[obj_id] = out["score"]
        result.in_memory[obj_id] = in_memory
        result.prompted[obj_id] = prompted

    def _region_logits(self, obj_id: int, logits: torch.Tensor) -> torch.Tensor:
        """Low-resolution mask logits ``(1, 1, h, w)`` -> ``(rows, cols)`` over its region."""
        row0, col0, row1, col1 = self.region_of(obj_id)
        rows, cols = row1 - row0, col1 - col0
        if logits.shape[-2:] != (rows, cols):
            logits = F.interpolate(logits, size=(rows, cols), mode="bilinear", align_corners=False)
        return logits[0, 0]

    def _mask_from_logits(self, obj_id: int, logits: torch.Tensor) -> np.ndarray:
        inside = (self._region_logits(obj_id, logits) > self.mask_threshold).cpu().numpy()
        row0, col0, row1, col1 = self.region_of(obj_id)
        if inside.shape == self.frame_shape:
            return inside
        mask = np.zeros(self.frame_shape, dtype=bool)
        mask[row0:row1, col0:col1] = inside
        return mask

    def _logits_in(self, obj_id: int, frame: int, box) -> np.ndarray:
        """The object's mask logits on ``frame`` over ``box`` (frame coordinates); -inf
        outside its region."""
        row0, col0, row1, col1 = box
        values = np.full((row1 - row0, col1 - col0), -np.inf, np.float32)
        region = self.region_of(obj_id)
        top, left = max(row0, region[0]), max(col0, region[1])
        bottom, right = min(row1, region[2]), min(col1, region[3])
        if top < bottom and left < right:
            logits = self._region_logits(obj_id, self._tracks[obj_id].logits[frame])
            values[top - row0 : bottom - row0, left - col0 : right - col0] = (
                logits[top - region[0] : bottom - region[0], left - region[1] : right - region[1]]
                .float()
                .cpu()
                .numpy()
            )
        return values

    def _resolve_overlaps(self, frame: int, fresh=()) -> None:
        """Make the objects' masks on ``frame`` disjoint (``non_overlap``).

        Masks of objects not in ``fresh`` (just decoded) are first rebuilt from their logits:
        an earlier resolution may have trimmed them for an object that has since changed.
        """
        if not self.non_overlap or frame not in self.results:
            return
        result = self.results[frame]
        decoded = [
            obj_id
            for obj_id in result.masks
            if obj_id in self._tracks and frame in self._tracks[obj_id].logits
        ]
        if len(decoded) < 1:
            return
        raw = {
            obj_id: (
                result.masks[obj_id]
                if obj_id in fresh
                else self._mask_from_logits(obj_id, self._tracks[obj_id].logits[frame])
            )
            for obj_id in decoded
        }
        result.masks.update(
            resolve_overlaps(raw, lambda obj_id, box: self._logits_in(obj_id, frame, box))
        )

    # -- input checks (prompts.py) -------------------------------------------------------------

    def _check_frame(self, frame, name: str = "frame") -> int:
        return check_frame(frame, self.num_frames, name)

    def _check_obj(self, obj_id) -> int:
        return check_obj(obj_id)

    def _check_points(self, points, labels, obj_id: int) -> tuple[np.ndarray, np.ndarray]:
        # a zoom session places a new object's region around its prompt: any point of the frame
        new_zoomed = self.zoom and obj_id not in self._tracks
        region = (0, 0, *self.frame_shape) if new_zoomed else self.region_of(obj_id)
        return check_points(points, labels, self.frame_shape, region)

    def _point_inputs(self, coords: np.ndarray, labels: np.ndarray, region) -> dict:
        return point_inputs(coords, labels, region, self.net.image_size, self.device)

    def _mask_inputs(self, mask, region) -> torch.Tensor:
        return mask_inputs(mask, self.frame_shape, region, self.net.image_size, self.device)

    # -- undo (history.py) ---------------------------------------------------------------------

    @_one_writer
    def snapshot(self) -> SessionSnapshot:
        """What the session has learned so far (tracks, results, bank entries), by reference,
        to `restore` later, e.g. when the user undoes a run (`history.take_snapshot`)."""
        return take_snapshot(self)

    @_one_writer
    def restore(self, snapshot: SessionSnapshot) -> None:
        """Go back to ``snapshot`` (from `snapshot`): later prompts, corrections, propagated
        memories and bank entries are forgotten (`history.restore_snapshot`)."""
        restore_snapshot(self, snapshot)


def _frame_ranges(frames: list[int], most: int = 8) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"frames 0-2, 5, 7-8"`` (at most ``most`` runs listed)."""
    runs: list[list[int]] = []
    for frame in frames:
        if runs and frame == runs[-1][1] + 1:
            runs[-1][1] = frame
        else:
            runs.append([frame, frame])
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:most]]
    if len(runs) > most:
        parts.append("...")
    return ("frame " if len(frames) == 1 else "frames ") + ", ".join(parts)


def _flip_points(coords, flip: tuple[int, ...], frame_shape: tuple[int, int]) -> np.ndarray:
    """``(N, 2)`` (row, col) pixel coordinates mirrored along the frame axes in ``flip``."""
    flipped = np.array(coords, dtype=np.float64, copy=True)
    for axis in flip:
        flipped[:, axis] = frame_shape[axis] - 1 - flipped[:, axis]
    return flipped
