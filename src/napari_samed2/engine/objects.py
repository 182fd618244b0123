"""A session's objects: prompts and tracked frames stored in the objects' tracks and in the
per-frame results, each object seen through its own region."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from sam2.utils.misc import concat_points

from .blank_frames import BlankFrames
from .carry import CarryPolicy
from .errors import PromptError
from .flips import Flip, FlippedPrompt, average_flips
from .masks import ObjectMasks
from .object_steps import prompt_step, propagation_step
from .prompts import box_clicks, check_points, mask_inputs, point_inputs
from .region_encoders import RegionEncoders
from .results import FrameResult
from .settings import SessionSettings
from .tracking import FrameTracker, ObjectTrack
from .zoom_search import fitted_first_prompt, mask_region

Region = tuple[int, int, int, int]  # (row0, col0, row1, col1)


class SessionObjects:
    """The object tracks and per-frame results of a session, and the steps that change them.

    Parameters
    ----------
    tracks, results : dict
        The session's object tracks and per-frame results (changed in place).
    tracker : FrameTracker
    encoders : RegionEncoders
        The session's frames, and the encoder of each object's region.
    blank : BlankFrames
        Told about every decoded prompt (a blank prompted frame is reported at once).
    memory : {"selective", "sam2"}
    settings : SessionSettings
    mask_threshold : float
    click_seed, carry_mask : bool
        The model's hints.
    zoom : bool
        Whether a new object gets its own region at its first prompt.

    The session's live options ``non_overlap``, ``connected``, ``motion`` and ``gate`` are
    passed to each call (they may change between calls).
    """

    def __init__(
        self,
        *,
        tracks: dict[int, ObjectTrack],
        results: dict[int, FrameResult],
        tracker: FrameTracker,
        encoders: RegionEncoders,
        blank: BlankFrames,
        memory: str,
        settings: SessionSettings,
        mask_threshold: float,
        click_seed: bool,
        carry_mask: bool,
        zoom: bool,
    ):
        self.tracks = tracks
        self.results = results
        self.tracker = tracker
        self.encoders = encoders
        self.blank = blank
        self.memory = memory
        self.settings = settings
        self.click_seed = click_seed
        self.zoom = zoom
        frames = encoders.frames
        self.masks = ObjectMasks(frames.frame_shape, frames.region, mask_threshold)
        self.carry = CarryPolicy(
            memory=memory, settings=settings, frames=frames, threshold=mask_threshold,
            carry_mask=carry_mask,
        )  # fmt: skip

    def region_of(self, obj_id: int) -> Region:
        """The part of the frames the model sees for ``obj_id`` (its zoom, or the session's)."""
        return self.masks.region(self.tracks.get(obj_id))

    # -- prompts -------------------------------------------------------------------------------

    def check_points(self, points, labels, obj_id: int) -> tuple[np.ndarray, np.ndarray]:
        """`prompts.check_points` in the region where ``obj_id``'s clicks must fall."""
        frame_shape = self.encoders.frames.frame_shape
        # a zoom session places a new object's region around its prompt: any point of the frame
        new_zoomed = self.zoom and obj_id not in self.tracks
        region = (0, 0, *frame_shape) if new_zoomed else self.region_of(obj_id)
        return check_points(points, labels, frame_shape, region)

    def prompt_points(
        self, frame: int, obj_id: int, coords, labels, keep_previous: bool, *, non_overlap: bool
    ) -> FrameResult:
        """Prompt with checked clicks (``keep_previous``: added to the object's earlier clicks
        on the frame)."""
        net, device = self.tracker.net, self.tracker.device

        def inputs(region):
            prompt = point_inputs(coords, labels, region, net.image_size, device)
            if keep_previous and obj_id in self.tracks:
                previous = self.tracks[obj_id].points.get(frame)
                prompt = concat_points(previous, prompt["point_coords"], prompt["point_labels"])
            return {"point_inputs": prompt}

        return self.prompt_fitted(frame, obj_id, coords, inputs, non_overlap=non_overlap)

    def prompt_box(
        self, frame: int, obj_id: int, box, corners, clicks, labels, *, non_overlap: bool
    ) -> FrameResult:
        """Prompt with a checked ``box`` (its ``corners`` clipped to the frame) and optional
        checked clicks."""
        net, device = self.tracker.net, self.tracker.device

        def inputs(region):
            points = box_clicks(box, region, clicks, labels)
            return {"point_inputs": point_inputs(*points, region, net.image_size, device)}

        anchor = corners if clicks is None else np.concatenate([corners, clicks])
        return self.prompt_fitted(frame, obj_id, anchor, inputs, non_overlap=non_overlap)

    def prompt_fitted(
        self, frame: int, obj_id: int, anchor, inputs, *, non_overlap: bool
    ) -> FrameResult:
        """Prompt with ``inputs(region)``; a new object in a zoom session first gets its
        region around ``anchor`` (`zoom_search.fitted_first_prompt`)."""

        def prompt_in(region):
            return self.prompt(frame, obj_id, **inputs(region), non_overlap=non_overlap)

        if not self.zoom or obj_id in self.tracks:
            return prompt_in(self.region_of(obj_id))
        return fitted_first_prompt(
            frame=frame, obj_id=obj_id, anchor=anchor, view=self.encoders.frames.region,
            tracks=self.tracks, results=self.results, new_track=self.encoders.new_track,
            prompt_in=prompt_in, resolve=functools.partial(self.resolve, non_overlap=non_overlap),
        )  # fmt: skip

    def prompt_with_mask(
        self, frame: int, obj_id: int, mask, correction: bool, *, non_overlap: bool
    ) -> FrameResult:
        """Prompt with a mask (a new object in a zoom session gets a region around it)."""
        frame_shape = self.encoders.frames.frame_shape
        image_size = self.tracker.net.image_size
        region = self.region_of(obj_id)
        placed = self.zoom and obj_id not in self.tracks
        zoomed = mask_region(mask, frame_shape) if placed else None
        if zoomed is not None:
            region = zoomed
            self.tracks[obj_id] = self.encoders.new_track(region)
        prompt = mask_inputs(mask, frame_shape, region, image_size, self.tracker.device)
        if not correction and not prompt.any():
            if placed:
                self.tracks.pop(obj_id, None)  # the region just placed for it: no object
            raise PromptError(
                f"the mask for object {obj_id} on frame {frame} has no pixel the model can see "
                f"in the region {region} at its input size {image_size}; give a "
                "larger mask or a click"
            )
        return self.prompt(
            frame, obj_id, mask_inputs=prompt, correction=correction, non_overlap=non_overlap
        )

    def prompt(
        self,
        frame,
        obj_id,
        point_inputs=None,
        mask_inputs=None,
        correction=False,
        *,
        non_overlap: bool,
    ) -> FrameResult:
        """Decode the prompt in the object's track (`object_steps.prompt_step`); the frame's
        result with it."""
        track = self.tracks.setdefault(obj_id, ObjectTrack())
        out = prompt_step(
            self.tracker, track, obj_id, frame, memory=self.memory,
            settings=self.settings.memory, click_seed=self.click_seed,
            point_inputs=point_inputs, mask_inputs=mask_inputs, correction=correction,
            encode_pending=self.encode_pending,
            decoded=functools.partial(self.blank.report, prompted=frame),
        )  # fmt: skip
        outputs = {obj_id: (out, True, frame in track.confirmed)}
        return self.store(frame, outputs, non_overlap=non_overlap)

    def average_flips(
        self,
        obj_id: int,
        sessions: dict[Flip, object],
        prompt_flipped: FlippedPrompt,
        logits_of: Callable[[object], torch.Tensor],
        *,
        non_overlap: bool,
    ) -> None:
        """Average ``obj_id``'s mask logits on the (only) frame with those of the same prompt
        on the image flipped three ways (`flips.average_flips`), and its mask with them."""
        track = self.tracks[obj_id]
        average = average_flips(track, sessions, prompt_flipped, logits_of)
        self.results[0].masks[obj_id] = self.masks.mask(track, average)
        self.resolve(0, fresh=(obj_id,), non_overlap=non_overlap)

    # -- propagation ---------------------------------------------------------------------------

    def encode_pending(self) -> None:
        """Encode the memory of every stored frame that has none yet (sam2's preflight)."""
        self.tracker.encode_pending(self.tracks.values())

    def prefetch(self, frame: int) -> None:
        """Start encoding ``frame`` in the background, once per encoder the objects use."""
        for encoder in self.encoders.in_use(self.tracks.values()):
            encoder.prefetch(frame)

    def track_frame(
        self,
        frame: int,
        reverse: bool,
        *,
        non_overlap: bool,
        connected: bool,
        motion: bool,
        gate: float,
        ends_once: bool = False,
    ) -> FrameResult:
        """Track every prompted object to ``frame`` (`object_steps.propagation_step`)."""
        outputs = {}
        for obj_id, track in sorted(self.tracks.items()):
            if not track.cond:
                continue  # an object whose only prompt was removed
            out, in_memory = propagation_step(
                self.tracker, self.carry, track, obj_id, frame, reverse, self.results,
                memory=self.memory, settings=self.settings.memory,
                region=self.region_of(obj_id), connected=connected, motion=motion, gate=gate,
                ends_once=ends_once,
            )  # fmt: skip
            outputs[obj_id] = (out, in_memory, frame in track.confirmed)
        return self.store(frame, outputs, non_overlap=non_overlap)

    # -- results (masks.py) --------------------------------------------------------------------

    def store(self, frame: int, outputs: dict, *, non_overlap: bool) -> FrameResult:
        return self.masks.store(self.results, self.tracks, frame, outputs, non_overlap=non_overlap)

    def resolve(self, frame: int, fresh=(), *, non_overlap: bool) -> None:
        self.masks.resolve(self.results, self.tracks, frame, fresh, non_overlap=non_overlap)

    def forget(self, obj_id: int, track: ObjectTrack, *, non_overlap: bool) -> None:
        """Drop the removed ``obj_id`` (``track``, already out of the tracks) from the bank
        (unless frozen) and from the results."""
        if not self.tracker.bank.frozen:
            self.tracker.bank.remove_entries(track.bank_uids.values())
        self.masks.forget(self.results, self.tracks, obj_id, non_overlap=non_overlap)
