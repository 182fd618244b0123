"""Training clips from a label set (`labelset_data.LabelSetData`), for the training loop.

Each clip follows one training object from a frame where it is visible through up to
``num_frames`` of its source's frames where it is known, forward or backward (the engine
propagates both ways), together with other training objects of that source known on the same
frames. A one-frame clip trains prompt -> mask; longer ones train propagation through memory,
and frames where an object is absent train its object score. Stored prompts are used on the
first frame where the entry has them (else the loop samples clicks from the mask). Frames are
scaled, resized and normalised by the engine's own `FrameSource.model_input`; clips are
flipped and transposed at random.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from ..engine.frames import FrameSource, ModelInput
from ..engine.prompts import point_inputs
from .clips import Clip, _resize
from .labelset_data import FinetuneDataError, LabelSetData, SourceObject
from .prompts import BOX_BOTTOM_RIGHT, BOX_TOP_LEFT, POSITIVE, PointPrompt

MIN_PROMPT_PIXELS = 4  # an object smaller than this at the network's size is not prompted


class LabelSetClips:
    """A `loop.ClipSource` over a label set's training objects.

    Batch ``k`` depends only on ``(seed, k, rank)``. With ``world_size > 1`` each rank draws
    from its own share of the training objects (`torch.utils.data.DistributedSampler`).

    Parameters
    ----------
    data : LabelSetData
        The label set, read and split.
    model_input : ModelInput
        The network's input size and normalisation.
    num_frames : int
        Most frames per clip.
    objects_per_clip : int
        Most objects per clip (the first is the drawn one).
    seed : int
        Seed of the draws.
    rank, world_size : int
        This process's place in a distributed run.
    augment : bool
        Flip and transpose clips at random.
    end_clips : float
        Share of clips that start near an end of the drawn object and run past it, through
        frames where it is known to be absent (when it has such frames): what teaches the
        object score that the object has ended, with its neighbours above and below in view.
    """

    def __init__(
        self,
        data: LabelSetData,
        model_input: ModelInput,
        *,
        num_frames: int = 4,
        objects_per_clip: int = 4,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        augment: bool = True,
        end_clips: float = 0.0,
    ):
        if num_frames < 1 or objects_per_clip < 1:
            raise ValueError(
                f"num_frames ({num_frames}) and objects_per_clip ({objects_per_clip}) must be >= 1"
            )
        self.data = data
        self.model_input = model_input
        self.size = model_input.image_size
        self.num_frames = num_frames
        self.objects_per_clip = objects_per_clip
        self.seed = seed
        self.rank = rank
        self.augment = augment
        if not 0.0 <= end_clips <= 1.0:
            raise ValueError(f"end_clips ({end_clips}) must be between 0 and 1")
        self.end_clips = end_clips
        self._inputs: dict[tuple[int, int], torch.Tensor] = {}
        self._masks: dict[tuple[int, int, int], torch.Tensor] = {}
        self.items = [i for i in data.train if self._promptable(data.objects[i])]
        if not self.items:
            raise FinetuneDataError(self._too_small())
        self.sampler = DistributedSampler(
            range(len(self.items)), num_replicas=world_size, rank=rank, shuffle=True, seed=seed
        )
        self._frames = [
            FrameSource(s.images, axis=0, rgb=s.rgb) for s in data.sources
        ]  # one per source: intensities scaled over the source's frames, as the engine does

    def __len__(self) -> int:
        """Clips in one pass over this rank's share of the training objects."""
        return len(self.sampler)

    def batch(self, index: int) -> Clip:
        """Clip number ``index``: one clip (``B = 1``) with one or more objects."""
        length = len(self.sampler)
        self.sampler.set_epoch(index // length)
        item = self.items[list(self.sampler)[index % length]]
        rng = np.random.default_rng([self.seed, index, self.rank, 2])
        lead = self.data.objects[item]
        window = self._end_window(lead, rng) if rng.random() < self.end_clips else None
        if window is None:
            start = int(rng.choice([k for k in lead.present if self._visible(lead, k)]))
            if rng.random() < 0.5:
                window = [k for k in lead.known if k >= start][: self.num_frames]
            else:
                window = [k for k in lead.known if k <= start][::-1][: self.num_frames]
        start = window[0]
        members = [item, *self._companions(item, window, rng)]
        images = torch.stack([self._input(lead.source, k) for k in window])
        masks = torch.stack(
            [torch.stack([self._mask(self.data.objects[m], k) for k in window]) for m in members]
        )
        prompts = [self._stored_prompt(self.data.objects[m], start) for m in members]
        code = int(rng.integers(8)) if self.augment else 0
        images, masks = _flip(images, code), _flip(masks, code)
        prompts = [None if p is None else _flip_prompt(p, code, self.size) for p in prompts]
        return Clip(
            images=images[None],
            masks=masks,
            kinds=[str(self.data.sources[lead.source].key[0])],
            clip_index=torch.zeros(len(members), dtype=torch.long),
            prompts=prompts if any(p is not None for p in prompts) else None,
            frame_keys=[(lead.source, k, code) for k in window],
        )

    # -- pieces --------------------------------------------------------------------------------

    def _companions(self, item: int, window: list[int], rng: np.random.Generator) -> list[int]:
        """Other training objects of the lead's source, visible on the first frame of
        ``window`` and known on all of it."""
        lead = self.data.objects[item]
        candidates = [
            i
            for i in self.data.train
            if i != item
            and self.data.objects[i].source == lead.source
            and self._visible(self.data.objects[i], window[0])
            and all(k in self.data.objects[i].known_set for k in window)
        ]
        count = min(len(candidates), self.objects_per_clip - 1)
        if count == 0:
            return []
        return [int(i) for i in rng.choice(candidates, size=count, replace=False)]

    def _end_window(self, obj: SourceObject, rng: np.random.Generator) -> list[int] | None:
        """Frames from a visible frame at most ``num_frames - 2`` before one of the object's
        ends through at least one known frame past it, in the direction of that end; None
        when no end of the object lies inside its known frames."""
        ends = []
        for step in (1, -1):
            ordered = obj.known if step == 1 else obj.known[::-1]
            last = max(i for i, k in enumerate(ordered) if k in obj.present_set)
            if last + 1 < len(ordered):
                ends.append((ordered, last))
        if not ends:
            return None
        ordered, last = ends[int(rng.integers(len(ends)))]
        lead_in = max(0, self.num_frames - 2)
        starts = [
            i for i in range(max(0, last - lead_in), last + 1) if self._visible(obj, ordered[i])
        ]
        if not starts:
            return None
        first = starts[int(rng.integers(len(starts)))]
        return ordered[first : first + self.num_frames]

    def _promptable(self, obj: SourceObject) -> bool:
        return any(self._visible(obj, k) for k in obj.present)

    def _visible(self, obj: SourceObject, position: int) -> bool:
        """Large enough at the network's size to be prompted there (its mask as the clip
        holds it: resizing can thin a small object away)."""
        if position not in obj.present_set:
            return False
        return float(self._mask(obj, position).sum()) >= MIN_PROMPT_PIXELS

    def _too_small(self) -> str:
        """Why no training object can be prompted: each one, where it is and how large."""
        described = []
        for index in self.data.train:
            obj = self.data.objects[index]
            source = self.data.sources[obj.source]
            areas = {k: int((source.labels[k] == obj.obj_id).sum()) for k in obj.present}
            largest = max(areas, key=areas.get)
            described.append(
                f"object {obj.obj_id} of {source.key[1]!r} (largest: {areas[largest]} px on "
                f"entry {source.entry_ids[largest]}, {source.labels.shape[1]}x"
                f"{source.labels.shape[2]} frame)"
            )
        shown = "; ".join(described[:5]) + ("; ..." if len(described) > 5 else "")
        return (
            f"no training object is large enough to prompt: each needs at least "
            f"{MIN_PROMPT_PIXELS} px on one frame once the frame is resized to the network's "
            f"{self.size}x{self.size} input, and the label set has only {shown}; label larger "
            "objects or frames where they are larger"
        )

    def _input(self, source: int, position: int) -> torch.Tensor:
        key = (source, position)
        if key not in self._inputs:
            self._inputs[key] = self._frames[source].model_input(position, self.model_input)
        return self._inputs[key]

    def _mask(self, obj: SourceObject, position: int) -> torch.Tensor:
        key = (obj.source, obj.obj_id, position)
        if key not in self._masks:
            labels = self.data.sources[obj.source].labels[position]
            mask = torch.from_numpy(labels == obj.obj_id)[None]
            self._masks[key] = _resize(mask, self.size, is_mask=True)[0]
        return self._masks[key]

    def _stored_prompt(self, obj: SourceObject, position: int) -> PointPrompt | None:
        source = self.data.sources[obj.source]
        stored = source.prompts[position].get(obj.obj_id)
        if not stored:
            return None
        return stored_prompt(stored, source.labels.shape[1:], self.size)


def stored_prompt(prompts: dict, frame_shape: tuple[int, int], size: int) -> PointPrompt | None:
    """A label set's stored prompts (rows and columns of the frame) as the loop's prompt:
    sam2's (x, y) in network pixels, a box first as corners labelled 2 and 3 (as the engine
    sends them). None when there is neither a point nor a box."""
    rows_cols, labels = [], []
    if prompts.get("box") is not None:
        row0, col0, row1, col1 = prompts["box"]
        rows_cols += [[row0, col0], [row1, col1]]
        labels += [BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]
    points = prompts.get("points") or []
    rows_cols += [list(p) for p in points]
    labels += list(prompts.get("labels") or [POSITIVE] * len(points))
    if not rows_cols:
        return None
    region = (0, 0, *frame_shape)
    coords = np.asarray(rows_cols, np.float64)
    tensors = point_inputs(coords, np.asarray(labels), region, size, "cpu")
    return PointPrompt(tensors["point_coords"][0].numpy(), tensors["point_labels"][0].numpy())


def _flip(stack: torch.Tensor, code: int) -> torch.Tensor:
    """One of the 8 flips/transposes of the last two axes (bit 0: columns, 1: rows, 2: swap)."""
    if code & 1:
        stack = stack.flip(-1)
    if code & 2:
        stack = stack.flip(-2)
    if code & 4:
        stack = stack.transpose(-1, -2)
    return stack.contiguous()


def _flip_prompt(prompt: PointPrompt, code: int, size: int) -> PointPrompt:
    """``prompt`` moved as `_flip` moves the image; box corners stay top-left, bottom-right."""
    coords = prompt.coords.astype(np.float32).copy()
    if code & 1:
        coords[:, 0] = size - 1 - coords[:, 0]
    if code & 2:
        coords[:, 1] = size - 1 - coords[:, 1]
    if code & 4:
        coords = coords[:, ::-1].copy()
    corners = np.flatnonzero(np.isin(prompt.labels, (BOX_TOP_LEFT, BOX_BOTTOM_RIGHT)))
    if corners.size == 2:
        box = coords[corners]
        coords[corners] = np.stack([box.min(0), box.max(0)])
    return PointPrompt(coords, prompt.labels.copy())
