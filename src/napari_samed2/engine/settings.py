"""Settings of a propagation session: the selective memory's knobs and the feature caches'
sizes (the user's choices, the gate among them, are `options.SessionOptions`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DISK_CACHE_BYTES = 10 * 1024**3


@dataclass
class MemorySettings:
    """Knobs of the selective memory (ignored in ``memory="sam2"`` mode).

    Attributes
    ----------
    bank_threshold : float
        A propagated frame is also offered to the long-term bank if its predicted IoU is at
        least this (corrections are always offered, with confidence 1.0). In [0, 1].
    bank_capacity : int
        Maximum number of long-term bank entries (SAMed-2's released bank holds 640).
    top_k : int
        Bank entries retrieved per frame and object (0 disables retrieval).
    recent_frames : int
        Recent (gated) frames that join memory attention; sam2 uses ``num_maskmem - 1`` (6).
        Fewer, confident memories are SAMed-2's point, and each one costs a full map of
        memory-attention tokens (4096 at 1024 px).
    max_conditioning : int
        Prompted/corrected frames that join memory attention, the closest ones in time
        (sam2 uses all of them).
    key_size : int
        Retrieval keys are the frame's image embedding average-pooled to ``key_size`` squared
        positions, so an entry costs kilobytes rather than the 4 MB of a full 64x64 map.
    carry_lookback : int
        For models that carry the previous frame's mask as a prompt (``carry_mask``, e.g.
        samed2-nano): a neighbour whose mask fails the gate (a blurred, blank or noisy frame)
        is not carried on; the nearest of the ``carry_lookback`` frames before it in the
        direction of travel that passed the gate (or was prompted) is carried instead. 0
        always carries the neighbour, as ``memory="sam2"`` does.
    """

    bank_threshold: float = 0.8
    bank_capacity: int = 64
    top_k: int = 1
    recent_frames: int = 3
    max_conditioning: int = 2
    key_size: int = 8
    carry_lookback: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.bank_threshold) <= 1.0:
            raise ValueError(f"bank_threshold must be in [0, 1], got {self.bank_threshold!r}")
        if int(self.bank_capacity) < 1:
            raise ValueError(f"bank_capacity must be >= 1, got {self.bank_capacity!r}")
        if int(self.top_k) < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k!r}")
        if int(self.recent_frames) < 0:
            raise ValueError(f"recent_frames must be >= 0, got {self.recent_frames!r}")
        if int(self.max_conditioning) < 1:
            raise ValueError(f"max_conditioning must be >= 1, got {self.max_conditioning!r}")
        if int(self.key_size) < 1:
            raise ValueError(f"key_size must be >= 1, got {self.key_size!r}")
        if int(self.carry_lookback) < 0:
            raise ValueError(f"carry_lookback must be >= 0, got {self.carry_lookback!r}")


@dataclass
class SessionSettings:
    """Settings of a `PropagationSession`.

    Attributes
    ----------
    memory : MemorySettings
        The selective memory's knobs.
    cache_bytes : int
        Upper bound of the image-feature cache in bytes (least recently used frames are
        evicted). Re-propagation over cached frames skips the encoder.
    memory_key_bytes : int
        Upper bound of the memory frames' projected keys and values kept between tracked
        frames (`model.memory_attention.MemoryKeyCache`; 32 MiB per memory frame of a SAM 2.1
        network at 1024 px, 0.1 MiB for samed2-nano). 0 keeps none: sam2's own memory
        attention runs (the same masks, to float rounding).
    pair_encoding : bool
        Encode frames in neighbouring pairs ``(2k, 2k+1)``. Always on for nets with a temporal
        adapter (they need true neighbours); for stock SAM2 it also halves encoder calls.
    prefetch : bool
        Encode the next pair in a background thread while memory attention and the decoder
        run on the current frame. Off by default: on an idle 2-core CPU the thread competes
        with the main thread's torch threads and made a 24-frame 512-px job 31 % slower
        (1024 px: 8 %; docs/benchmarks.md). The gain once measured came from a machine shared
        with other jobs, where the extra thread won CPU time from them.
    percentiles : tuple of float
        Lower/upper percentiles for the intensity normalisation of non-uint8 data.
    disk_cache_bytes : int
        Upper bound of the on-disk feature cache in bytes (10 GiB; 0 turns it off). Encoded
        frames are written there and read back by any later session on the same frames,
        model, precision and region, so reopening a stack skips the encoder
        (`disk_features`). The bound holds for the whole folder, least recently used entries
        evicted.
    disk_cache_dir : path, optional
        The folder of the on-disk cache; default ``$NAPARI_SAMED2_FEATURES``, else
        ``features`` in the cache folder (`disk_features.default_directory`).
    """

    memory: MemorySettings = field(default_factory=MemorySettings)
    cache_bytes: int = 2 * 1024**3
    memory_key_bytes: int = 512 * 1024**2
    pair_encoding: bool = True
    prefetch: bool = False
    percentiles: tuple[float, float] = (0.5, 99.5)
    disk_cache_bytes: int = DISK_CACHE_BYTES
    disk_cache_dir: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        if int(self.cache_bytes) < 0:
            raise ValueError(f"cache_bytes must be >= 0, got {self.cache_bytes!r}")
        if isinstance(self.disk_cache_bytes, bool) or int(self.disk_cache_bytes) < 0:
            raise ValueError(
                f"disk_cache_bytes must be a number of bytes >= 0 (0: no disk cache), got "
                f"{self.disk_cache_bytes!r}"
            )
        if int(self.memory_key_bytes) < 0:
            raise ValueError(f"memory_key_bytes must be >= 0, got {self.memory_key_bytes!r}")
        low, high = self.percentiles
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(
                f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles!r}"
            )
