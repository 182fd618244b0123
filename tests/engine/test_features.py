"""Feature cache (LRU bounded in bytes) and pair-wise encoding."""

from __future__ import annotations

import numpy as np
import torch

from napari_samed2.engine import FeatureCache, FrameFeatures, PropagationSession


def _features(nbytes: int) -> FrameFeatures:
    values = torch.zeros(nbytes // 4, dtype=torch.float32).reshape(1, 1, 1, -1)
    return FrameFeatures(maps=[values], pos_maps=[values])


def test_cache_evicts_least_recently_used_to_stay_under_its_byte_bound():
    cache = FeatureCache(max_bytes=3000)
    for frame in range(3):
        cache.put(frame, _features(1000))
    assert len(cache) == 3 and cache.nbytes == 3000
    assert cache.get(0) is not None  # 0 is now the most recently used
    cache.put(3, _features(1000))
    assert 1 not in cache and {0, 2, 3} == {f for f in range(4) if f in cache}
    assert cache.nbytes <= 3000
    cache.put(4, _features(5000))  # larger than the whole cache: not kept
    assert 4 not in cache and cache.nbytes <= 3000
    assert FeatureCache(0).get(0) is None


def test_bounded_cache_limits_memory_and_still_gives_identical_masks(small_net, video):
    frames, _ = video
    full = PropagationSession(small_net, frames, memory="sam2")
    one_frame = full.encoder.features(0).nbytes
    from napari_samed2.engine import SessionSettings

    memory_only = SessionSettings(cache_bytes=3 * one_frame, disk_cache_bytes=0)
    tight = PropagationSession(small_net, frames, memory="sam2", settings=memory_only)
    for session in (full, tight):
        session.add_points(0, 1, [[32, 20]], [1])
    for a, b in zip(full.propagate("forward"), tight.propagate("forward"), strict=True):
        assert np.array_equal(a.masks[1], b.masks[1])
    assert tight.cache.nbytes <= 3 * one_frame and len(tight.cache) <= 3
    calls = tight.encoder.encoder_calls
    list(tight.propagate("forward"))
    assert tight.encoder.encoder_calls > calls  # evicted frames were encoded again
    tight.close()
    full.close()
