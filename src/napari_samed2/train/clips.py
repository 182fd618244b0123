"""Training clips: short runs of neighbouring slices or frames with several objects' masks.

A clip is drawn from a synthetic sample (2-D images become clips of shifted crops), scaled to
[0, 1] exactly as the engine scales stacks (`scale_intensity`), and resized to the network's
input size. Several objects are tracked in each clip: the image encoder (the expensive part)
runs once per frame, the prompt encoder, decoder and memory once per object, as in SAM's own
training where many masks share one image embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .. import synthetic

if TYPE_CHECKING:
    from collections.abc import Hashable

    from ..model.sam2_step import FeatureLevels
    from .prompts import PointPrompt

# Relative frequency of each data kind in training.
# Fluorescence-like data dominates: it is what the plugin's users and the demo segment, and a
# first run with an even mix (and lr 1e-3) collapsed to empty masks within 300 steps.
DEFAULT_MIX: dict[str, float] = {
    "nuclei": 0.3,
    "cells": 0.07,
    "tubes": 0.04,
    "organs": 0.05,
    "nuclei-volume": 0.25,
    "organ-volume": 0.04,
    "timelapse": 0.25,
}
VOLUME_KINDS = ("nuclei-volume", "organ-volume", "tissue-volume", "brain-volume")  # z, not time
STACK_KINDS = (*VOLUME_KINDS, "timelapse")
ENGINE_PERCENTILES = (0.5, 99.5)  # engine/frames.py FrameSource default
MIN_OBJECT_AREA = 24  # pixels at the network's input size on the prompted frame


@dataclass
class Clip:
    """A batch of clips.

    Attributes
    ----------
    images : torch.Tensor
        ``(B, T, 3, S, S)`` float32 in [0, 1].
    masks : torch.Tensor
        ``(N, T, S, S)`` bool, each tracked object in each frame (may be empty on some frames).
    kinds : list of str
        The generator of each clip.
    clip_index : torch.Tensor, optional
        ``(N,)`` int64, the clip each object belongs to; ``None`` means object ``i`` is in clip
        ``i`` (one object per clip).
    prompts : list, optional
        ``(N,)`` a stored first-frame prompt per object (`prompts.PointPrompt` in the
        network's input pixels, or None where the object has none): used instead of a
        simulated one (label sets keep the prompts their users gave).
    frame_keys : list, optional
        ``(B * T,)`` a hashable key per frame, clip-major: frames with equal keys have equal
        images, so their features may be cached (`frozen_features`).
    features : FeatureLevels, optional
        The image encoder's features of ``images`` (clip-major), computed beforehand by a
        frozen encoder; the forward pass then skips the encoder.
    """

    images: torch.Tensor
    masks: torch.Tensor
    kinds: list[str]
    clip_index: torch.Tensor | None = None
    prompts: list[PointPrompt | None] | None = None
    frame_keys: list[Hashable] | None = None
    features: FeatureLevels | None = None

    @property
    def batch_size(self) -> int:
        return self.images.shape[0]

    @property
    def num_objects(self) -> int:
        return self.masks.shape[0]

    def object_clips(self) -> torch.Tensor:
        """``(N,)`` the clip of each object."""
        if self.clip_index is None:
            return torch.arange(self.num_objects)
        return self.clip_index

    @property
    def num_frames(self) -> int:
        return self.images.shape[1]


def scale_intensity(
    stack: np.ndarray, percentiles: tuple[float, float] = ENGINE_PERCENTILES
) -> np.ndarray:
    """Scale an image or stack to [0, 1] as the engine does for inference.

    uint8 data is divided by 255 (sam2's convention); anything else is mapped from its
    ``percentiles`` (over the whole stack) to [0, 1] and clipped.

    Parameters
    ----------
    stack : np.ndarray
        ``(..., Y, X)`` any real dtype.

    Returns
    -------
    np.ndarray of float32
        Same shape, in [0, 1].
    """
    if stack.dtype == np.uint8:
        return stack.astype(np.float32) / np.float32(255)
    values = stack.astype(np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(stack.shape, np.float32)
    low, high = np.percentile(finite, percentiles)
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(stack.shape, np.float32)
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0)
    return np.nan_to_num(scaled, nan=0.0).astype(np.float32)


class ClipSampler:
    """Draws batches of training clips from the synthetic generators.

    Batch ``k`` depends only on ``(seed, k)``, so training resumes exactly.

    Parameters
    ----------
    image_size : int
        Network input size ``S``.
    num_frames : int
        Frames per clip ``T`` (even, so the temporal adapter pairs true neighbours).
    batch_size : int
        Clips per batch ``B``.
    seed : int
        Base seed.
    mix : dict, optional
        Relative frequency per generator name (`synthetic.GENERATORS`).
    field_sizes : tuple of int
        Sizes of the generated fields before resizing to ``S``; they set the objects' scale.
    objects_per_clip : int
        Objects tracked per clip (drawn without replacement while there are enough).
    event_focus : float
        Fraction of time-lapse clips whose frames straddle a division or a cell entering the
        field, with the cells involved always among the tracked objects. Such moments are
        otherwise rare in short clips; they teach the object score that a mother ends where it
        divides, a daughter begins there, and an entering cell is absent before it enters.
    end_focus : float
        Fraction of volume clips whose frames run past the end of an object present on the
        first frame (1 to T-1 frames with it, then none), with that object always tracked.
        A random window rarely shows an end at the right moment; these teach the object
        score to say "absent" where the object's blurred tail and its neighbours above
        remain (the embedded model carried nuclei through whole stacks without them).
    """

    def __init__(
        self,
        image_size: int = 256,
        num_frames: int = 4,
        batch_size: int = 2,
        seed: int = 0,
        mix: dict[str, float] | None = None,
        field_sizes: tuple[int, ...] = (64, 96, 128, 160, 192, 256),
        objects_per_clip: int = 1,
        event_focus: float = 0.0,
        end_focus: float = 0.0,
    ):
        for name, value in (("event_focus", event_focus), ("end_focus", end_focus)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.event_focus = event_focus
        self.end_focus = end_focus
        if objects_per_clip < 1:
            raise ValueError(f"objects_per_clip must be >= 1, got {objects_per_clip}")
        self.objects_per_clip = objects_per_clip
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        mix = dict(mix or DEFAULT_MIX)
        unknown = set(mix) - set(synthetic.GENERATORS)
        if unknown:
            raise ValueError(
                f"unknown data kinds {sorted(unknown)}; expected some of "
                f"{sorted(synthetic.GENERATORS)}"
            )
        self.image_size = image_size
        self.num_frames = num_frames
        self.batch_size = batch_size
        self.seed = seed
        self.kinds = list(mix)
        weights = np.array([mix[k] for k in self.kinds], np.float64)
        self.weights = weights / weights.sum()
        self.field_sizes = field_sizes

    def batch(self, index: int) -> Clip:
        """Batch number ``index`` (deterministic)."""
        rng = np.random.default_rng([self.seed, index])
        images, masks, kinds, owners = [], [], [], []
        for clip in range(self.batch_size):
            kind, stack, object_masks = self._one_clip(rng)
            images.append(stack)
            masks.append(object_masks)
            kinds.append(kind)
            owners += [clip] * object_masks.shape[0]
        return Clip(
            torch.stack(images), torch.cat(masks), kinds, torch.tensor(owners, dtype=torch.long)
        )

    # -- one clip ------------------------------------------------------------------------------

    def _one_clip(self, rng: np.random.Generator) -> tuple[str, torch.Tensor, torch.Tensor]:
        """A clip: its kind, frames ``(T, 3, S, S)`` and object masks ``(K, T, S, S)``."""
        for _ in range(50):
            kind = str(rng.choice(self.kinds, p=self.weights))
            frames, labels, involved = self._raw_clip(kind, rng)
            frames = self._augment(frames, rng)
            images = _resize(torch.from_numpy(frames), self.image_size, is_mask=False)
            ids = [i for i in np.unique(labels[0]) if i != 0]
            if not ids:
                continue
            object_masks = torch.from_numpy(labels[:, None] == np.array(ids)[None, :, None, None])
            resized = _resize(object_masks.float(), self.image_size, is_mask=True)
            areas = resized[0].flatten(1).sum(-1).numpy()
            usable = np.flatnonzero(areas >= MIN_OBJECT_AREA)
            if usable.size == 0:
                continue
            count = self.objects_per_clip
            first = [k for k in usable if ids[k] in involved][:count]
            if first:
                others = np.setdiff1d(usable, first)
                rest = count - len(first)
                drawn = rng.choice(others if others.size else usable, size=rest,
                                   replace=others.size < rest)  # fmt: skip
                picks = np.concatenate([np.array(first, int), drawn.astype(int)])
            else:
                picks = rng.choice(usable, size=count, replace=usable.size < count)
            rgb = images[:, None].expand(-1, 3, -1, -1).contiguous()
            return kind, rgb, resized[:, picks].permute(1, 0, 2, 3).contiguous()
        raise RuntimeError("could not draw a clip with a usable object in 50 tries")

    def _raw_clip(
        self, kind: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, set[int]]:
        """``(T, Y, X)`` float32 frames in [0, 1], int32 labels and the ids of cells in an event
        the clip was chosen to show (empty for most clips)."""
        frames = self.num_frames
        involved: set[int] = set()
        past_end = False
        height = int(rng.choice(self.field_sizes))
        width = int(np.clip(height * rng.uniform(0.75, 1.33), 48, 320))
        seed = int(rng.integers(2**31))
        generator = synthetic.GENERATORS[kind]
        if kind in STACK_KINDS:
            stride = int(rng.integers(1, 3)) if kind != "timelapse" else 1
            around_event = kind == "timelapse" and self.event_focus > 0 and frames > 1
            if around_event and rng.random() < self.event_focus:
                depth = int(rng.integers(max(12, frames + 2), 25))
            else:
                around_event = False
                depth = max(frames * stride, int(rng.integers(frames * stride, 24)))
            sample = generator(shape=(depth, height, width), seed=seed)
            scaled, stack_labels = scale_intensity(sample.image), sample.labels
            start = int(rng.integers(0, depth - frames * stride + 1))
            if around_event:
                start, involved = _window_around_event(sample, frames, rng, start)
            if kind in VOLUME_KINDS and frames > 1 and self.end_focus > 0:
                past_end = rng.random() < self.end_focus
            if past_end:
                if rng.random() < 0.5:  # an object's first slice is its end going up
                    scaled, stack_labels = scaled[::-1], stack_labels[::-1]
                start, involved = _window_past_end(stack_labels, frames, stride, rng, start)
            picks = start + stride * np.arange(frames)
            frames_, labels = scaled[picks], stack_labels[picks]
        else:
            pad = 6
            sample = generator(shape=(height + 2 * pad, width + 2 * pad), seed=seed)
            scaled = scale_intensity(sample.image)
            static = rng.random() < 0.25
            offsets = np.zeros((frames, 2), int)
            if not static:
                # A slowly drifting view of one image: video-like training from stills.
                steps = rng.integers(-2, 3, (frames, 2))
                offsets = np.clip(np.cumsum(steps, axis=0) + pad, 0, 2 * pad)
                offsets[0] = pad
            else:
                offsets[:] = pad
            frames_ = np.stack([scaled[y : y + height, x : x + width] for y, x in offsets])
            labels = np.stack([sample.labels[y : y + height, x : x + width] for y, x in offsets])
        if not (past_end and involved) and rng.random() < 0.5:  # the engine goes both ways
            frames_, labels = frames_[::-1], labels[::-1]
        if rng.random() < 0.5:
            frames_, labels = frames_[:, :, ::-1], labels[:, :, ::-1]
        if rng.random() < 0.5:
            frames_, labels = frames_.transpose(0, 2, 1), labels.transpose(0, 2, 1)
        return np.ascontiguousarray(frames_), np.ascontiguousarray(labels), involved

    @staticmethod
    def _augment(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Contrast variety: gamma, inversion (bright-field-like), 8-bit quantisation."""
        if rng.random() < 0.3:
            frames = frames ** rng.uniform(0.6, 1.6)
        if rng.random() < 0.15:
            frames = 1.0 - frames
        if rng.random() < 0.2:
            # 8-bit data is not stretched by the engine: simulate a narrow dynamic range.
            gain = rng.uniform(0.3, 1.0)
            offset = rng.uniform(0.0, 1.0 - gain)
            frames = np.round((frames * gain + offset) * 255) / 255
        return np.ascontiguousarray(frames, dtype=np.float32)


def _window_around_event(
    sample: synthetic.SyntheticSample, frames: int, rng: np.random.Generator, start: int
) -> tuple[int, set[int]]:
    """A window start whose ``frames`` frames straddle one division or entry in ``sample``, and
    the ids of the cells in it; ``start`` and no ids when the sample has no such event."""
    present = sample.labels.reshape(len(sample.labels), -1)
    events = []  # (first frame after the change, ids involved)
    daughters_of: dict[int, list[int]] = {}
    for daughter, mother in sample.events.get("split", {}).items():
        daughters_of.setdefault(int(mother), []).append(int(daughter))
    for mother, daughters in daughters_of.items():
        born = int(np.flatnonzero((present == daughters[0]).any(1))[0])
        events.append((born, {mother, *daughters}))
    for entering in sample.events.get("enter", []):
        events.append((int(np.flatnonzero((present == entering).any(1))[0]), {int(entering)}))
    depth = len(sample.labels)
    events = [(t, ids) for t, ids in events if 1 <= t <= depth - 1]
    if not events:
        return start, set()
    change, ids = events[int(rng.integers(len(events)))]
    low, high = max(0, change - frames + 1), min(change - 1, depth - frames)
    if high < low:
        return start, set()
    return int(rng.integers(low, high + 1)), ids


def _window_past_end(
    labels: np.ndarray, frames: int, stride: int, rng: np.random.Generator, start: int
) -> tuple[int, set[int]]:
    """A window start whose ``frames`` slices (``stride`` apart) hold an object on the first
    1 to ``frames - 1`` slices and not after, and that object's id; ``start`` and no ids when
    no object of ``labels`` (Z, Y, X) fits."""
    depth = len(labels)
    last_start = depth - stride * (frames - 1) - 1
    present = np.zeros((depth, int(labels.max()) + 1), bool)
    for z in range(depth):
        present[z, np.unique(labels[z])] = True
    ids = np.flatnonzero(present[:, 1:].any(0)) + 1
    for obj_id in rng.permutation(ids):
        slices = np.flatnonzero(present[:, obj_id])
        first, last = int(slices[0]), int(slices[-1])
        if last >= depth - 1:
            continue  # it does not end inside the stack
        inside = int(rng.integers(1, frames))  # slices of the window with the object
        window = last - stride * (inside - 1) - int(rng.integers(stride))
        if first <= window <= last_start:
            return window, {int(obj_id)}
    return start, set()


def _resize(stack: torch.Tensor, size: int, is_mask: bool) -> torch.Tensor:
    """``(T, Y, X)`` or ``(T, C, Y, X)`` -> size x size (antialiased bilinear like the engine)."""
    squeeze = stack.dim() == 3
    values = stack[:, None] if squeeze else stack
    values = values.float()
    if values.shape[-2:] != (size, size):
        values = F.interpolate(
            values, size=(size, size), mode="bilinear", align_corners=False, antialias=not is_mask
        )
    if is_mask:
        values = values > 0.5
    return values[:, 0] if squeeze else values
