"""Encoded frames on disk: which entry holds a pair of frames' features, and `FrameFeatures`
to and from a `FeatureStore`, so a reopened stack skips the image encoder.

An entry holds one encoder batch (a pair ``(2k, 2k+1)``, or one frame), as the encoder makes
it: with a temporal adapter a frame's features depend on its neighbour too. Its key is a
digest of everything the features depend on:

- each frame's content as fed (`FrameSource.content_hash`: raw bytes, dtype, shape, and the
  value range the stack is scaled with),
- the region of the frames the model sees,
- the model: its image encoder's weights and architecture (`encoder_fingerprint`), input size
  and mean/std,
- the precision (compute dtype) and the device type,
- whether frames are encoded in pairs, and the entry format's version.

Positional encodings, the same for every frame, are one more entry per model, which also
records the dtypes and shapes every features entry must have.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from sam2.modeling.sam2_base import SAM2Base

from ..model.download import cache_dir
from ..model.fingerprint import encoder_fingerprint
from .feature_store import FORMAT_VERSION, FeatureStore
from .features import FrameFeatures
from .frames import FrameSource, ModelInput

logger = logging.getLogger(__name__)

FEATURES_ENV = "NAPARI_SAMED2_FEATURES"
# dtypes an entry may hold, by name: a name read from a file is looked up here, never resolved
DTYPES = {
    str(dtype).removeprefix("torch."): dtype
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64)
}
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def default_directory() -> Path:
    """Where features are stored: ``$NAPARI_SAMED2_FEATURES``, else ``features`` in the cache
    folder (``$NAPARI_SAMED2_CACHE`` or the user cache dir, as for downloaded weights)."""
    override = os.environ.get(FEATURES_ENV)
    return Path(override).expanduser() if override else cache_dir() / "features"


@dataclass(frozen=True)
class EncoderIdentity:
    """What, besides the frames, makes an encoding: the image encoder's `encoder_fingerprint`,
    the input size and normalisation, compute dtype, device type, and pair encoding."""

    fingerprint: str
    image_size: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    dtype: str
    device: str
    pairs: bool

    def describe(self) -> dict:
        return {**asdict(self), "format_version": FORMAT_VERSION}


@dataclass(frozen=True)
class Level:
    """dtype, shape ``(1, C, H, W)`` and memory format of one feature level.

    The memory format (the encoder gives some levels channels-last strides) is restored on
    reading: it decides which kernels run on the features next, and so the last bits of the
    results (with bf16, whole mask pixels).
    """

    dtype: torch.dtype
    shape: tuple[int, ...]
    memory_format: str = "contiguous"

    @classmethod
    def of(cls, tensor: torch.Tensor) -> Level:
        channels_last = (
            tensor.dim() == 4
            and not tensor.is_contiguous()
            and tensor.is_contiguous(memory_format=torch.channels_last)
        )
        return cls(
            tensor.dtype, tuple(tensor.shape), "channels_last" if channels_last else "contiguous"
        )

    def describe(self) -> list:
        return [str(self.dtype).removeprefix("torch."), list(self.shape), self.memory_format]

    @classmethod
    def parse(cls, item) -> Level:
        """A level from `describe`'s list as read from a file (ValueError if unsound)."""
        if (
            not isinstance(item, list)
            or len(item) != 3
            or not isinstance(item[0], str)
            or item[0] not in DTYPES
            or not isinstance(item[1], list)
            or len(item[1]) != 4
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in item[1])
            or item[1][0] != 1
            or not isinstance(item[2], str)
            or item[2] not in MEMORY_FORMATS
        ):
            raise ValueError(
                f"layout level {item!r} is not [dtype, [1, C, H, W], memory format] with dtype "
                f"one of {sorted(DTYPES)} and memory format one of {sorted(MEMORY_FORMATS)}"
            )
        return cls(DTYPES[item[0]], tuple(item[1]), item[2])

    def restore(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        """``tensor`` (as read) on ``device`` in this level's memory format."""
        return tensor.to(device).contiguous(memory_format=MEMORY_FORMATS[self.memory_format])


class DiskFeatures:
    """A session's features in a `FeatureStore`.

    Parameters
    ----------
    store : FeatureStore
    net : SAM2Base
        The network; its encoder is fingerprinted on the first read or write (about 0.2 s
        for SAM2.1-T on a CPU, once per process while its weights do not change).
    model_input : ModelInput
    device, dtype
        Where and in which precision the session's encoder runs.
    pairs : bool
        Whether frames are encoded in pairs.
    """

    def __init__(
        self,
        store: FeatureStore,
        net: SAM2Base,
        model_input: ModelInput,
        *,
        device: torch.device,
        dtype: torch.dtype,
        pairs: bool,
    ):
        self.store = store
        self.net = net
        self.model_input = model_input
        self.device, self.dtype, self.pairs = torch.device(device), dtype, bool(pairs)
        self.levels = int(net.num_feature_levels)
        self._identity: EncoderIdentity | None = None
        self._positions: list[torch.Tensor] | None = None
        self._layout: list[Level] | None = None
        self._lock = threading.Lock()

    @property
    def identity(self) -> EncoderIdentity:
        with self._lock:
            if self._identity is None:
                self._identity = EncoderIdentity(
                    fingerprint=encoder_fingerprint(self.net),
                    image_size=int(self.model_input.image_size),
                    mean=self.model_input.mean,
                    std=self.model_input.std,
                    dtype=str(self.dtype).removeprefix("torch."),
                    device=self.device.type,
                    pairs=self.pairs,
                )
            return self._identity

    # -- keys ------------------------------------------------------------------------------

    def group_key(self, frames: FrameSource, group: list[int]) -> str:
        """The key of the entry holding ``group``'s features (frames encoded together)."""
        return _digest(
            {
                "model": self.identity.describe(),
                "region": list(frames.region),
                "frames": [frames.content_hash(frame) for frame in group],
            }
        )

    def positions_key(self) -> str:
        """The key of the entry holding the positional encodings and the features' layout."""
        return _digest({"model": self.identity.describe(), "entry": "positions"})

    # -- reading and writing ---------------------------------------------------------------

    def load(self, frames: FrameSource, group: list[int]) -> dict[int, FrameFeatures] | None:
        """``group``'s features from the store, on the session's device, or None."""
        known = self._read_positions()
        if known is None:
            return None
        layout, positions = known
        expected = {
            f"{i}.{level}": (layout[level].dtype, layout[level].shape)
            for i in range(len(group))
            for level in range(self.levels)
        }
        found = self.store.read(self.group_key(frames, group), expected)
        if found is None:
            return None
        self.store.touch(self.positions_key())  # used with every entry: last to be evicted
        tensors, _ = found
        return {
            frame: FrameFeatures(
                maps=[
                    layout[level].restore(tensors[f"{i}.{level}"], self.device)
                    for level in range(self.levels)
                ],
                pos_maps=positions,
            )
            for i, frame in enumerate(group)
        }

    def save(
        self, frames: FrameSource, group: list[int], features: dict[int, FrameFeatures]
    ) -> None:
        """Queue ``group``'s freshly encoded ``features`` for writing (in the background)."""
        self._learn_layout(features[group[0]])
        tensors = {
            f"{i}.{level}": features[frame].maps[level].detach().to("cpu")
            for i, frame in enumerate(group)
            for level in range(self.levels)
        }
        metadata = {
            "entry": "features",
            "frames": str(len(group)),
            "region": json.dumps(list(frames.region)),
            "model": json.dumps(self.identity.describe()),
        }
        positions = self.positions_key()
        self.store.write_later(self.group_key(frames, group), tensors, metadata, keep=[positions])
        self.store.touch(positions)

    def region(self, frames: FrameSource) -> StoredRegion:
        """The store as one frame source's encoder sees it (`FrameEncoder`'s ``stored``)."""
        return StoredRegion(self, frames)

    def close(self) -> None:
        """Finish the queued writes."""
        self.store.close()

    # -- positional encodings and layout ---------------------------------------------------

    def _read_positions(self) -> tuple[list[Level], list[torch.Tensor]] | None:
        """The features' layout and the positional encodings (on the device), or None."""
        with self._lock:
            if self._positions is not None:
                return self._layout, self._positions
        key = self.positions_key()
        if key not in self.store:
            return None
        found = self.store.read(key)
        if found is None:
            return None
        tensors, metadata = found
        try:
            layout = _parse_levels(metadata.get("layout", ""), self.levels)
            position_levels = _parse_levels(metadata.get("positions", ""), self.levels)
            positions = _check_positions(tensors, position_levels, layout)
        except ValueError as error:
            self.store.discard(key, f"not a sound positions entry ({error})")
            return None
        with self._lock:
            if self._positions is None:
                self._layout = layout
                self._positions = [
                    level.restore(pos, self.device)
                    for level, pos in zip(position_levels, positions, strict=True)
                ]
            return self._layout, self._positions

    def _learn_layout(self, features: FrameFeatures) -> None:
        layout = [Level.of(m) for m in features.maps]
        with self._lock:
            if self._layout == layout:
                return
            if self._layout is not None:
                logger.warning(
                    "stored feature layout %s differs from the encoder's %s: the positions "
                    "entry is replaced",
                    self._layout,
                    layout,
                )
            self._layout, self._positions = layout, list(features.pos_maps)
        key = self.positions_key()
        tensors = {f"pos.{i}": p.detach().to("cpu") for i, p in enumerate(features.pos_maps)}
        metadata = {
            "entry": "positions",
            "layout": json.dumps([level.describe() for level in layout]),
            "positions": json.dumps([Level.of(p).describe() for p in features.pos_maps]),
            "model": json.dumps(self.identity.describe()),
        }
        self.store.write_later(key, tensors, metadata)


@dataclass(frozen=True)
class StoredRegion:
    """`DiskFeatures` bound to one `FrameSource` (the session's view or a zoom region)."""

    disk: DiskFeatures
    frames: FrameSource

    def load(self, group: list[int]) -> dict[int, FrameFeatures] | None:
        return self.disk.load(self.frames, group)

    def save(self, group: list[int], features: dict[int, FrameFeatures]) -> None:
        self.disk.save(self.frames, group, features)


def _digest(payload: dict) -> str:
    text = json.dumps({"version": FORMAT_VERSION, **payload}, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=32).hexdigest()


def _parse_levels(text: str, levels: int) -> list[Level]:
    """Levels recorded in a positions entry's metadata (ValueError if unsound)."""
    described = json.loads(text)
    if not isinstance(described, list) or len(described) != levels:
        raise ValueError(f"layout {text!r} does not describe {levels} feature levels")
    return [Level.parse(item) for item in described]


def _check_positions(
    tensors: dict[str, torch.Tensor], levels: list[Level], layout: list[Level]
) -> list[torch.Tensor]:
    names = [f"pos.{level}" for level in range(len(levels))]
    if sorted(tensors) != sorted(names):
        raise ValueError(f"tensors {sorted(tensors)}, expected {names}")
    positions = [tensors[name] for name in names]
    for name, pos, level, features in zip(names, positions, levels, layout, strict=True):
        if (pos.dtype, tuple(pos.shape)) != (level.dtype, level.shape):
            raise ValueError(
                f"{name} is {pos.dtype} {tuple(pos.shape)}, recorded {level.dtype} {level.shape}"
            )
        if level.shape[2:] != features.shape[2:]:
            raise ValueError(f"{name} has shape {level.shape}, its features {features.shape}")
    return positions
