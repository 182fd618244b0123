"""Kept memory keys and values (SessionSettings.memory_key_bytes) change no mask, and keep the
memory attention from projecting a memory frame again on every tracked frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_samed2.engine import PropagationSession
from napari_samed2.engine.settings import SessionSettings
from napari_samed2.model import sam2_config

from .conftest import moving_disk_video, present_object_net

FRAMES = 10


@pytest.fixture(scope="module")
def sam21_net():
    """A random SAM 2.1-T architecture (7 memories, 4 RoPE layers) at 128 px, for speed."""
    return present_object_net(sam2_config("sam2.1-tiny", image_size=128), seed=1)


@pytest.fixture(scope="module")
def disk_video():
    video, _ = moving_disk_video(frames=FRAMES, rows=72, cols=96, seed=3)
    return video


def _propagate(model, video, memory, key_bytes):
    """Every tracking step's logits (in order) and every mask of a propagation both ways from
    frame 4, two objects (a click and a box)."""
    session = PropagationSession(
        model,
        video,
        memory=memory,
        non_overlap=False,
        connected=False,
        settings=SessionSettings(memory_key_bytes=key_bytes),
    )
    logits = []
    infer = session.tracker.infer

    def recorded(**kwargs):
        out = infer(**kwargs)
        logits.append(out["pred_masks"].clone())
        return out

    session.tracker.infer = recorded
    session.add_points(4, 1, [[36, 48]], [1])
    session.add_box(4, 2, (20, 30, 55, 70))
    masks = {}
    for direction in ("forward", "backward"):
        for result in session.propagate(direction, start=4):
            for obj_id, mask in result.masks.items():
                masks[direction, result.frame, obj_id] = mask
    return session, logits, masks


@pytest.mark.parametrize("memory", ["sam2", "selective"])
@pytest.mark.parametrize("which", ["sam2.1-tiny", "samed2-nano"])
def test_kept_memory_keys_give_the_same_logits_and_masks(
    which, memory, sam21_net, nano, disk_video
):
    model = sam21_net if which == "sam2.1-tiny" else nano
    _, plain_logits, plain_masks = _propagate(model, disk_video, memory, key_bytes=0)
    session, logits, masks = _propagate(model, disk_video, memory, key_bytes=2**30)
    assert session.tracker.memory_keys is not None
    assert sorted(masks) == sorted(plain_masks) and len(masks) == 2 * (FRAMES + 1)
    assert len(logits) == len(plain_logits) >= 2 * (FRAMES - 1)  # tracked frames
    diff = max(float((a - b).abs().max()) for a, b in zip(logits, plain_logits, strict=True))
    assert diff < 1e-4, diff
    assert all(np.array_equal(masks[k], plain_masks[k]) for k in masks)
    # not vacuous: masks are neither empty nor everything, and kept keys were used
    coverage = [m.mean() for m in masks.values()]
    assert 0 < max(coverage) and min(coverage) < 1
    keys = session.tracker.memory_keys
    assert keys.hits > keys.misses > 0


def test_a_memory_frame_is_projected_once_not_on_every_tracked_frame(sam21_net, disk_video):
    """Memory tokens through the first layer's key projection, with and without kept keys."""
    projection = sam21_net.memory_attention.layers[0].cross_attn_image.k_proj
    counted = []
    hook = projection.register_forward_hook(
        lambda module, args, output: counted.append(args[0].numel() // args[0].shape[-1])
    )
    try:
        tokens = {}
        for key_bytes in (0, 2**30):
            counted.clear()
            _propagate(sam21_net, disk_video, "sam2", key_bytes)
            tokens[key_bytes] = sum(counted)
    finally:
        hook.remove()
    # 20 tracked frames per object, up to 7 memories each without; one new memory with
    assert tokens[2**30] < 0.35 * tokens[0], tokens


def test_removing_an_object_or_resetting_drops_its_kept_keys(sam21_net, disk_video):
    session, _, _ = _propagate(sam21_net, disk_video, "sam2", key_bytes=2**30)
    keys = session.tracker.memory_keys
    both = keys.nbytes
    session.remove_object(2)
    assert 0 < keys.nbytes < both
    session.reset()
    assert keys.nbytes == 0
    with torch.inference_mode():
        assert len(keys._scopes) == 0
