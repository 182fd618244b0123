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

import numpy as np
import torch
from sam2.modeling.sam2_base import SAM2Base

from ..model import LoadedModel
from ..model.memory_attention import MemoryKeyCache
from ..model.session_model import session_model
from .blank_frames import BlankFrames
from .errors import NoPromptError, PromptError, PropagationError
from .flips import box_prompt, flipped_sessions, mask_prompt, points_prompt
from .frames import ModelInput
from .history import SessionSnapshot, restore_snapshot, take_snapshot
from .memory import LongTermBank
from .objects import SessionObjects
from .one_writer import WriterLock, one_writer
from .options import SessionOptions
from .prompts import check_box, check_frame, check_mask, check_obj
from .region_encoders import RegionEncoders
from .results import FrameResult, frame_order, frames_total
from .run_log import logged_run
from .settings import SessionSettings
from .tracking import FrameTracker, ObjectTrack


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
    axis_kind : {"Z", "T"} or None
        What that axis is (depth or time; None: unknown): picks the profile's defaults that
        depend on it (carried masks follow motion on time axes; objects end once on depth
        axes for the nano model).
    options : SessionOptions, optional
        The user's choices (memory, gate, zoom, connected masks, motion, flips, one object
        per pixel); ``None`` fields take the model profile's defaults (`ModelProfile`), so a
        SAM 2 network with default options gives ``SAM2VideoPredictor``'s masks and the nano
        model its measured tricks. Change them later with `set_options`.
    settings : SessionSettings, optional
        Memory knobs, feature caches, pair encoding, prefetch. Encoded frames persist in an
        on-disk cache (10 GiB by default, `SessionSettings.disk_cache_bytes`; 0 turns it off),
        so a later session on the same frames, model and precision skips the encoder; `close`
        finishes its writes.
    bank : LongTermBank, optional
        A long-term bank to use (and update unless frozen); a new empty one by default.
    rgb, position
        Passed to `FrameSource`.
    region : (row0, col0, row1, col1), optional
        Show the model only this part of every frame (a zoom for small objects, e.g. from
        `frames.zoom_region`); prompts and masks stay in full-frame coordinates and shape.
    **choices
        Options by name (``memory="sam2"``, ``zoom=True``, ...), on top of ``options``; see
        `SessionOptions` for each.

    Attributes
    ----------
    options : SessionOptions
        The options in force, every default filled in from ``profile``.
    profile : ModelProfile
        The model's profile.
    disk_cache : DiskFeatures or None
        The on-disk feature cache (``disk_cache.store``: its folder, bound and counts).
    """

    def __init__(
        self,
        model: LoadedModel | SAM2Base,
        data,
        axis: int = 0,
        options: SessionOptions | None = None,
        *,
        axis_kind: str | None = None,
        settings: SessionSettings | None = None,
        bank: LongTermBank | None = None,
        rgb: bool | None = None,
        position: Sequence[int] | None = None,
        region: Sequence[int] | None = None,
        **choices,
    ):
        if options is not None and not isinstance(options, SessionOptions):
            raise TypeError(
                f"options must be a SessionOptions (or None), got {type(options).__name__}; "
                "give single options by name, e.g. memory='sam2'"
            )
        chosen = (options or SessionOptions()).replace(**choices)  # ValueError names the option
        self.settings = settings or SessionSettings()
        adapted = session_model(model)  # TypeError, ValueError: not a model we can feed
        self.profile = adapted.profile
        self.axis_kind = axis_kind
        self.options = chosen.resolved(self.profile, axis_kind)  # ValueError: a bad kind
        memory = self.options.memory
        self.net = adapted.net
        self.model_input = ModelInput(adapted.image_size, adapted.mean, adapted.std)
        self.mask_threshold = adapted.mask_threshold
        self.device, self.dtype = adapted.device, adapted.dtype
        self.model_name = adapted.name
        self.net.eval()
        self._model = model
        self._flipped: dict[tuple[int, ...], PropagationSession] | None = None
        self._encoders = RegionEncoders(
            self.net, self.model_input, device=self.device, dtype=self.dtype,
            settings=self.settings, region=region,
            source={"data": data, "axis": axis, "rgb": rgb, "position": position},
        )  # fmt: skip
        self.frames, self.cache = self._encoders.frames, self._encoders.cache
        self.encoder = self._encoders.encoder
        self.disk_cache = self._encoders.disk  # None with settings.disk_cache_bytes=0
        self._blank = BlankFrames(self._encoders.sources, self.frames.num_frames)
        mem = self.settings.memory
        self.tracker = FrameTracker(
            net=self.net, encoder=self.encoder, device=self.device, dtype=self.dtype,
            memory=memory, settings=mem, num_frames=self.frames.num_frames,
            bank=bank if bank is not None else LongTermBank(mem.bank_capacity),
            memory_keys=(
                MemoryKeyCache(self.settings.memory_key_bytes)
                if self.settings.memory_key_bytes > 0 else None
            ),
        )  # fmt: skip
        self.results: dict[int, FrameResult] = {}
        self._tracks: dict[int, ObjectTrack] = {}
        self._objects = SessionObjects(
            tracks=self._tracks, results=self.results, tracker=self.tracker,
            encoders=self._encoders, blank=self._blank, memory=memory, settings=self.settings,
            mask_threshold=self.mask_threshold, click_seed=self.profile.click_seed,
            carry_mask=self.profile.carry_mask, zoom=self.options.zoom,
        )  # fmt: skip
        full_view = tuple(self.frames.region) == (0, 0, *self.frame_shape)
        # flip averaging needs the whole of a single 2-D image
        self._flips = (
            self.options.flips and self.num_frames == 1 and not self.options.zoom and full_view
        )
        self.last_frame: int | None = None  # last frame a propagate call finished
        # one writer at a time: an open propagate() generator holds it until it ends
        self._writer = WriterLock()

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

    @property
    def averages_flips(self) -> bool:
        """Whether prompts are averaged over the image's flips: ``options.flips`` on a single
        2-D image seen whole (no zoom, no region)."""
        return self._flips

    def track(self, obj_id: int) -> ObjectTrack:
        """What the session holds of ``obj_id`` (its prompted and remembered frames' outputs,
        low-resolution logits), to inspect; `KeyError` for an unknown object."""
        return self._tracks[obj_id]

    @property
    def flip_sessions(self) -> dict[tuple[int, ...], PropagationSession]:
        """The helper sessions on the flipped images (empty until flip averaging first runs)."""
        return dict(self._flipped or {})

    def region_of(self, obj_id: int) -> tuple[int, int, int, int]:
        """The part of the frames the model sees for ``obj_id`` (its zoom, or the session's)."""
        return self._objects.region_of(obj_id)

    def close(self) -> None:
        """Stop the prefetch threads (if any), finish writing encoded frames to the disk cache
        and drop the features cached in memory."""
        for other in (self._flipped or {}).values():
            other.close()
        self._encoders.close()

    # -- prompts -------------------------------------------------------------------------------

    @one_writer
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
        frame, obj_id = check_frame(frame, self.num_frames), check_obj(obj_id)
        coords, label_array = self._objects.check_points(points, labels, obj_id)
        result = self._objects.prompt_points(
            frame, obj_id, coords, label_array, keep_previous, non_overlap=self.options.non_overlap
        )
        flipped = points_prompt(obj_id, coords, label_array, keep_previous, self.frame_shape)
        return self._flip_averaged(frame, obj_id, result, flipped)

    @one_writer
    def add_box(self, frame: int, obj_id: int, box, points=None, labels=None) -> FrameResult:
        """Segment ``obj_id`` on ``frame`` from a box ``(row0, col0, row1, col1)`` (pixels),
        optionally with clicks (``points``/``labels`` as in `add_points`).

        A box partly outside the frame is clipped to it; a box with zero area or wholly
        outside the frame raises `PromptError`.
        """
        frame, obj_id = check_frame(frame, self.num_frames), check_obj(obj_id)
        row0, col0, row1, col1 = check_box(box, self.frame_shape)
        rows, cols = self.frame_shape
        extra = extra_labels = None
        if points is not None or labels is not None:
            extra, extra_labels = self._objects.check_points(points, labels, obj_id)
        corners = np.clip([[row0, col0], [row1, col1]], 0, [rows, cols])
        result = self._objects.prompt_box(
            frame, obj_id, (row0, col0, row1, col1), corners, extra, extra_labels,
            non_overlap=self.options.non_overlap,
        )  # fmt: skip
        flipped = box_prompt(obj_id, corners, extra, extra_labels, self.frame_shape)
        return self._flip_averaged(frame, obj_id, result, flipped)

    @one_writer
    def add_mask(self, frame: int, obj_id: int, mask) -> FrameResult:
        """Give ``obj_id``'s mask on ``frame`` (``frame_shape``, nonzero = object).

        The mask must not be empty: an empty mask cannot show the model an object. To say
        that a tracked object is absent on a frame, use `correct` with an empty mask.
        """
        frame, obj_id = check_frame(frame, self.num_frames), check_obj(obj_id)
        if not check_mask(mask, self.frame_shape).any():
            raise PromptError(
                f"the mask for object {obj_id} on frame {frame} is empty: an empty mask cannot "
                "prompt an object; to say the object is absent on this frame use correct()"
            )
        result = self._objects.prompt_with_mask(
            frame, obj_id, mask, correction=False, non_overlap=self.options.non_overlap
        )
        return self._flip_averaged(frame, obj_id, result, mask_prompt(obj_id, mask))

    @one_writer
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
        frame, obj_id = check_frame(frame, self.num_frames), check_obj(obj_id)
        if obj_id not in self._tracks:
            raise PromptError(
                f"object {obj_id} is not in this session, so it cannot be corrected; objects: "
                f"{self.object_ids} (start a new object with add_points, add_box or add_mask)"
            )
        return self._objects.prompt_with_mask(
            frame, obj_id, mask, correction=True, non_overlap=self.options.non_overlap
        )

    @one_writer
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
        self._objects.forget(obj_id, track, non_overlap=self.options.non_overlap)
        self.tracker.forget_keys(obj_id)

    @one_writer
    def reset(self, *, bank: bool = False) -> None:
        """Forget every object, prompt and result (cached features stay: same image).
        ``bank=True`` also empties the long-term bank."""
        for other in (self._flipped or {}).values():
            other.reset(bank=bank)
        self._tracks.clear()
        self.results.clear()
        self.tracker.forget_keys()
        self.last_frame = None
        if bank:
            self.bank.clear()

    # -- propagation ---------------------------------------------------------------------------

    def resolve_start(self, direction: str = "both", start: int | None = None) -> int:
        """The frame a propagate call starts from (``start`` or the prompted frames)."""
        if not self._tracks or not any(t.cond for t in self._tracks.values()):
            raise NoPromptError("no object has a prompt yet; add points, a box or a mask first")
        if start is not None:
            return check_frame(start, self.num_frames, "start")
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
            raise self._writer.busy_error("propagate")
        if stop is not None:
            stop = check_frame(stop, self.num_frames, "stop")
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
        with self._writer.writing("propagate"):
            self._objects.encode_pending()
            yield from self._track_frames(forward, backward, cancel)
            self._blank.report()

    def _track_frames(self, forward, backward, cancel) -> Iterator[FrameResult]:
        for frames, reverse in ((forward, False), (backward, True)):
            for position, frame in enumerate(frames):
                if cancel is not None and cancel():
                    return
                if position + 1 < len(frames):
                    self._objects.prefetch(frames[position + 1])
                with torch.inference_mode():
                    result = self._objects.track_frame(
                        frame, reverse, non_overlap=self.options.non_overlap,
                        connected=self.options.connected, motion=self.options.motion,
                        gate=self.options.gate, ends_once=self.options.ends_once,
                    )  # fmt: skip
                self.last_frame = frame
                yield result

    # -- flip averaging (flips.py) -------------------------------------------------------------

    def _flip_averaged(self, frame: int, obj_id: int, result: FrameResult, prompt_flipped):
        """A prompt's ``result``; with flip averaging, the frame's result once ``obj_id``'s logits
        are averaged with ``prompt_flipped(session, flip)``'s on the flipped images (`flips`)."""
        if not self._flips:
            return result
        if self._flipped is None:
            self._flipped = flipped_sessions(self.frames.read(0), self._flipped_session)
        logits_of = lambda other: other._tracks[obj_id].logits[0]  # noqa: E731
        self._objects.average_flips(
            obj_id, self._flipped, prompt_flipped, logits_of, non_overlap=self.options.non_overlap
        )
        return self.results[frame]

    def _flipped_session(self, image: np.ndarray) -> PropagationSession:
        other = PropagationSession(
            self._model, image, axis=0, options=self.options, settings=self.settings,
            rgb=self.frames.rgb, non_overlap=False, connected=False, flips=False,
        )  # fmt: skip
        other._blank.reported = True  # the same image: this session warns for it
        return other

    # -- options -------------------------------------------------------------------------------

    @one_writer
    def set_options(self, **changes) -> SessionOptions:
        """Change live options (``gate``, ``connected``, ``motion``, ``non_overlap``): they act
        from the next prompt or propagated frame. The others shape the session (its memory,
        regions, encodings): a `ValueError` says to start a new session. Not during a run
        (`SessionBusyError`). Returns the options now in force."""
        self.options = self.options.live_change(**changes).resolved(self.profile, self.axis_kind)
        return self.options

    # -- undo (history.py) ---------------------------------------------------------------------

    @one_writer
    def snapshot(self) -> SessionSnapshot:
        """What the session has learned so far (tracks, results, bank entries), by reference,
        to `restore` later, e.g. when the user undoes a run (`history.take_snapshot`)."""
        return take_snapshot(self)

    @one_writer
    def restore(self, snapshot: SessionSnapshot) -> None:
        """Go back to ``snapshot`` (from `snapshot`): later prompts, corrections, propagated
        memories and bank entries are forgotten (`history.restore_snapshot`)."""
        restore_snapshot(self, snapshot)
