"""Image features: the encoder run on neighbouring pairs of frames, and an LRU cache in bytes.

Frames are encoded in pairs ``(2k, 2k+1)``: a temporal adapter then sees true neighbours, and
the pair is the same whichever direction propagation runs, so results do not depend on it.
Features come from the in-memory cache first, then from the disk cache (`disk_features`),
then from the encoder, whose output goes to both.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import torch
from sam2.modeling.sam2_base import SAM2Base

from ..model import autocast
from ..model.sam2_step import FeatureLevels, encode_images


@dataclass
class FrameFeatures:
    """The encoder's output for one frame.

    Attributes
    ----------
    maps : list of Tensor
        The feature levels sam2's tracking uses, each ``(1, C_l, H_l, W_l)``, highest
        resolution first (the same tensors as sam2's ``backbone_fpn[-num_feature_levels:]``).
    pos_maps : list of Tensor
        Their positional encodings, same shapes (shared by every frame, not counted in the
        cache's bytes).
    """

    maps: list[torch.Tensor]
    pos_maps: list[torch.Tensor]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.maps)

    @property
    def levels(self) -> FeatureLevels:
        """All levels in sam2's flattened ``(H*W, 1, C)`` layout (the tracking step's input)."""
        return FeatureLevels.from_maps(self.maps, self.pos_maps)

    @property
    def feat_sizes(self) -> list[tuple[int, int]]:
        return self.levels.feat_sizes

    @property
    def vision_feats(self) -> list[torch.Tensor]:
        return self.levels.vision_feats

    @property
    def vision_pos_embeds(self) -> list[torch.Tensor]:
        return self.levels.vision_pos_embeds

    def image_embedding(self) -> torch.Tensor:
        """The top-level embedding ``(1, C, H, W)`` (no memory)."""
        return self.maps[-1]


class FeatureCache:
    """Least-recently-used cache of `FrameFeatures`, bounded in bytes (0 disables it)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[int, FrameFeatures] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, frame: int) -> bool:
        with self._lock:
            return frame in self._items

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, frame: int) -> FrameFeatures | None:
        with self._lock:
            item = self._items.get(frame)
            if item is not None:
                self._items.move_to_end(frame)
            return item

    def put(self, frame: int, features: FrameFeatures) -> None:
        size = features.nbytes
        with self._lock:
            if frame in self._items:
                self._bytes -= self._items.pop(frame).nbytes
            if size > self.max_bytes:
                return
            self._items[frame] = features
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


class CacheView:
    """One region's part of a shared `FeatureCache` (keys ``(region, frame)``): the zoomed
    objects of a session share one byte budget."""

    def __init__(self, cache: FeatureCache, region: tuple[int, int, int, int]):
        self.shared = cache
        self.region = tuple(region)

    def __contains__(self, frame: int) -> bool:
        return (self.region, frame) in self.shared

    def get(self, frame: int) -> FrameFeatures | None:
        return self.shared.get((self.region, frame))

    def put(self, frame: int, features: FrameFeatures) -> None:
        self.shared.put((self.region, frame), features)


class StoredFeatures(Protocol):
    """Where encoded batches persist (`disk_features.StoredRegion`)."""

    def load(self, group: list[int]) -> dict[int, FrameFeatures] | None: ...

    def save(self, group: list[int], features: dict[int, FrameFeatures]) -> None: ...


class FrameEncoder:
    """Runs a network's image encoder on frames, in pairs, through a `FeatureCache`.

    Parameters
    ----------
    net : SAM2Base
        The network.
    load : callable
        ``load(frame) -> Tensor (3, S, S)``: the preprocessed model input of a frame.
    num_frames : int
        Length of the stack.
    cache : FeatureCache
        Where features are kept.
    device, dtype
        Where and in which precision the encoder runs.
    pairs : bool
        Encode ``(2k, 2k+1)`` together (required for nets with a temporal adapter).
    prefetch : bool
        Allow `prefetch` to encode a pair in a background thread.
    stored : StoredFeatures, optional
        Read before encoding a pair, written after (features on disk); None: memory only.

    Attributes
    ----------
    encoder_calls : int
        Batches run through the encoder.
    stored_loads : int
        Batches read from ``stored`` instead.
    """

    def __init__(
        self,
        net: SAM2Base,
        load: Callable[[int], torch.Tensor],
        num_frames: int,
        cache: FeatureCache,
        device: torch.device,
        dtype: torch.dtype,
        pairs: bool = True,
        prefetch: bool = False,
        stored: StoredFeatures | None = None,
    ):
        self.net = net
        self.load = load
        self.num_frames = num_frames
        self.cache = cache
        self.device = device
        self.dtype = dtype
        self.pairs = pairs
        self.stored = stored
        self.encoder_calls = 0  # batches run through the encoder (tests and benchmarks read it)
        self.stored_loads = 0
        self._pos_maps: list[torch.Tensor] | None = None
        self._pending: dict[int, Future] = {}
        self.prefetch_enabled = prefetch
        self._pool: ThreadPoolExecutor | None = None  # made on first use
        self._encode_lock = threading.Lock()

    def group(self, frame: int) -> list[int]:
        """The frames encoded together with ``frame`` (itself first is not guaranteed)."""
        if not self.pairs:
            return [frame]
        first = frame - frame % 2
        return [f for f in (first, first + 1) if f < self.num_frames]

    def features(self, frame: int) -> FrameFeatures:
        """The features of ``frame``, from the cache or by running the encoder on its pair."""
        future = self._pending.pop(self.group(frame)[0], None)
        cached = self.cache.get(frame)
        if cached is not None:
            return cached
        if future is not None:
            encoded = future.result()
        else:
            encoded = self._obtain(self.group(frame))
        return encoded[frame]

    def prefetch(self, frame: int) -> None:
        """Start encoding ``frame``'s pair in the background if it is not cached."""
        if not self.prefetch_enabled or not 0 <= frame < self.num_frames:
            return
        key = self.group(frame)[0]
        if key in self._pending or frame in self.cache:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="samed2-encoder")
        self._pending[key] = self._pool.submit(self._obtain_in_thread, self.group(frame))

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _obtain_in_thread(self, frames: list[int]) -> dict[int, FrameFeatures]:
        return self._obtain(frames)  # (inference mode is per thread: _obtain enters it)

    @torch.inference_mode()
    def _obtain(self, frames: list[int]) -> dict[int, FrameFeatures]:
        """``frames``' features from the disk cache, else from the encoder (then stored)."""
        if self.stored is not None:
            loaded = self.stored.load(frames)
            if loaded is not None:
                self.stored_loads += 1
                for frame, feats in loaded.items():
                    self.cache.put(frame, feats)
                return loaded
        encoded = self._encode(frames)
        if self.stored is not None:
            self.stored.save(frames, encoded)
        return encoded

    @torch.inference_mode()
    def _encode(self, frames: list[int]) -> dict[int, FrameFeatures]:
        batch = torch.stack([self.load(f) for f in frames]).to(self.device)
        with self._encode_lock, autocast(self.device, self.dtype):
            maps, pos_maps = encode_images(self.net, batch)
            self.encoder_calls += 1
        if self._pos_maps is None:
            self._pos_maps = [p[:1].clone() for p in pos_maps]
        result = {}
        for i, frame in enumerate(frames):
            # clone: a slice would keep the whole pair's storage alive after eviction
            feats = FrameFeatures(
                maps=[x[i : i + 1].clone() for x in maps], pos_maps=self._pos_maps
            )
            self.cache.put(frame, feats)
            result[frame] = feats
        return result
