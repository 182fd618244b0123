"""Memory attention with kept keys and values equals sam2's `MemoryAttention` to rounding."""

from __future__ import annotations

import pytest
import torch

from napari_samed2.model import build_model, sam2_config, small_config
from napari_samed2.model.memory_attention import (
    MemoryFrame,
    MemoryKeyCache,
    attend,
    supports_key_cache,
)

CONFIGS = {
    "sam2.1-tiny": lambda: sam2_config("sam2.1-tiny", image_size=256),  # 4 RoPE layers, d 256
    "small": small_config,  # the nano model's shape: 1 layer, d 64, mem_dim 32
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def net(request):
    torch.manual_seed(0)
    return build_model(CONFIGS[request.param]()).eval()


def _inputs(net, slots, seed=0, pointers=3):
    """Current frame, memory frames at ``slots`` and ``pointers`` pointer tokens."""
    generator = torch.Generator().manual_seed(seed)
    side = int(net.image_size) // 16
    tokens, channels, mem_dim = side * side, net.hidden_dim, net.mem_dim
    curr = torch.randn(tokens, 1, channels, generator=generator)
    curr_pos = torch.randn(tokens, 1, channels, generator=generator)
    pos_enc = torch.randn(1, mem_dim, side, side, generator=generator)
    frames = [
        MemoryFrame(torch.randn(1, mem_dim, side, side, generator=generator), pos_enc, t_pos)
        for t_pos in slots
    ]
    ptrs = torch.randn(pointers, 1, mem_dim, generator=generator) if pointers else None
    ptr_pos = torch.randn(pointers, 1, mem_dim, generator=generator) if pointers else None
    return curr, curr_pos, frames, ptrs, ptr_pos


def _sam2s(net, curr, curr_pos, frames, ptrs, ptr_pos):
    """sam2's own MemoryAttention on the concatenated memory, as SAM2Base builds it."""
    memory = [f.features.flatten(2).permute(2, 0, 1) for f in frames]
    memory_pos = [
        f.pos_enc.flatten(2).permute(2, 0, 1) + net.maskmem_tpos_enc[net.num_maskmem - f.t_pos - 1]
        for f in frames
    ]
    if ptrs is not None:
        memory.append(ptrs)
        memory_pos.append(ptr_pos)
    return net.memory_attention(
        curr=[curr],
        curr_pos=[curr_pos],
        memory=torch.cat(memory),
        memory_pos=torch.cat(memory_pos),
        num_obj_ptr_tokens=0 if ptrs is None else ptrs.shape[0],
    )


def _ours(net, curr, curr_pos, frames, ptrs, ptr_pos, scope):
    return attend(
        net.memory_attention,
        curr=curr,
        curr_pos=curr_pos,
        frames=frames,
        tpos_enc=net.maskmem_tpos_enc,
        pointers=ptrs,
        pointer_pos=ptr_pos,
        scope=scope,
    )


def test_kept_keys_give_sam2s_memory_attention_as_the_slots_move(net):
    slots = [0, 1, 2][: net.num_maskmem]
    curr, curr_pos, frames, ptrs, ptr_pos = _inputs(net, slots)
    cache = MemoryKeyCache()
    scope = cache.scope(1)
    with torch.inference_mode():
        first = _ours(net, curr, curr_pos, frames, ptrs, ptr_pos, scope)
        expected = _sam2s(net, curr, curr_pos, frames, ptrs, ptr_pos)
        # next frame: the same memories one slot further back, a new one nearest, a new
        # current frame; the kept keys must take the new temporal encodings
        new_curr, new_pos, new_frames, _, _ = _inputs(net, [net.num_maskmem - 1], seed=1)
        newest = MemoryFrame(new_frames[0].features, frames[0].pos_enc, net.num_maskmem - 1)
        older = [MemoryFrame(f.features, f.pos_enc, f.t_pos - 1) for f in frames[2:]]
        moved = [frames[0], *older, newest]
        second = _ours(net, new_curr, new_pos, moved, ptrs, ptr_pos, scope)
        expected_second = _sam2s(net, new_curr, new_pos, moved, ptrs, ptr_pos)
        uncached = _ours(net, new_curr, new_pos, moved, ptrs, ptr_pos, None)
    assert first.shape == expected.shape == curr.shape
    assert (first - expected).abs().max() < 1e-5
    assert (second - expected_second).abs().max() < 1e-5
    assert (uncached - expected_second).abs().max() < 1e-5
    assert cache.misses == len(frames) + 1 and cache.hits == len(moved) - 1
    # and the temporal term matters: without it the result differs
    assert (expected_second - expected).abs().max() > 1e-3


def test_a_frame_with_only_pointers_or_no_pointers(net):
    with torch.inference_mode():
        for slots, pointers in (([0], 0), ([], 2)):
            inputs = _inputs(net, slots, pointers=pointers)
            ours = _ours(net, *inputs, MemoryKeyCache().scope(0))
            assert (ours - _sam2s(net, *inputs)).abs().max() < 1e-5


def test_a_scope_keeps_what_its_last_step_used_within_the_byte_bound(net):
    curr, curr_pos, frames, ptrs, ptr_pos = _inputs(net, [0, 0, 0, 0])
    one = MemoryKeyCache()
    with torch.inference_mode():
        _ours(net, curr, curr_pos, frames, ptrs, ptr_pos, one.scope("a"))
        entry_bytes = one.nbytes // len(frames)
        _ours(net, curr, curr_pos, frames[2:], ptrs, ptr_pos, one.scope("a"))
        assert one.hits == 2 and one.nbytes == 2 * entry_bytes  # the two left behind dropped
        _ours(net, curr, curr_pos, frames[:1], ptrs, ptr_pos, one.scope("b"))
        assert one.nbytes == 3 * entry_bytes
        one.drop("a")
        assert one.nbytes == entry_bytes

        small = MemoryKeyCache(max_bytes=3 * entry_bytes)
        _ours(net, curr, curr_pos, frames, ptrs, ptr_pos, small.scope("a"))
        assert small.nbytes == 3 * entry_bytes  # the fourth is computed, not kept
        _ours(net, curr, curr_pos, frames, ptrs, ptr_pos, small.scope("a"))
        assert small.hits == 3 and small.misses == 5
        nothing = MemoryKeyCache(max_bytes=0)
        ours = _ours(net, curr, curr_pos, frames, ptrs, ptr_pos, nothing.scope("a"))
        assert nothing.nbytes == 0
        assert (ours - _sam2s(net, curr, curr_pos, frames, ptrs, ptr_pos)).abs().max() < 1e-5


def test_a_fresh_view_of_a_stored_memory_finds_its_keys(net):
    """The selective memory's bank hands out ``entry.features[None]``: a new view each time."""
    curr, curr_pos, frames, ptrs, ptr_pos = _inputs(net, [0])
    stored = frames[0].features[0].clone()  # (mem_dim, H, W), as the bank keeps it
    cache = MemoryKeyCache()
    with torch.inference_mode():
        for _ in range(3):
            view = [MemoryFrame(stored[None], frames[0].pos_enc, 0)]
            _ours(net, curr, curr_pos, view, ptrs, ptr_pos, cache.scope(0))
    assert (cache.misses, cache.hits) == (1, 2)


def test_weights_changed_in_place_are_not_served_from_old_keys(net):
    curr, curr_pos, frames, ptrs, ptr_pos = _inputs(net, [0, 1][: net.num_maskmem])
    cache = MemoryKeyCache()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    try:
        with torch.inference_mode():
            _ours(net, curr, curr_pos, frames, ptrs, ptr_pos, cache.scope(0))
        with torch.no_grad():  # what loading fine-tuned weights in place does
            for layer in net.memory_attention.layers:
                layer.cross_attn_image.v_proj.weight.mul_(1.5)
        with torch.inference_mode():
            ours = _ours(net, curr, curr_pos, frames, ptrs, ptr_pos, cache.scope(0))
            expected = _sam2s(net, curr, curr_pos, frames, ptrs, ptr_pos)
        assert cache.hits == 0 and (ours - expected).abs().max() < 1e-5
    finally:
        net.load_state_dict(state)


def test_keys_are_kept_only_for_inference(net):
    attention = net.memory_attention
    with torch.inference_mode():
        assert supports_key_cache(attention)
    assert not supports_key_cache(attention)  # gradients on: training never keeps keys
    attention.train()
    try:
        with torch.no_grad():
            assert not supports_key_cache(attention)
    finally:
        attention.eval()
