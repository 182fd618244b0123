"""sam2's memory attention with each memory frame's keys and values projected once.

In every layer of sam2's `MemoryAttention` the current frame cross-attends to the memory
tokens: keys ``k_proj(memory + pos)`` (rotary-encoded, except the object pointer tokens),
values ``v_proj(memory)``. A memory frame's features and spatial encoding do not change from
one tracked frame to the next; only its temporal slot does (``pos`` holds
``maskmem_tpos_enc[num_maskmem - t_pos - 1]``, and ``t_pos`` moves with the current frame).
Projections and rotary encoding are linear, so

    rope(k_proj(m + p + tpos)) = rope(k_proj(m + p)) + rope(W_k tpos)

and the first term is kept per memory frame and layer (`MemoryKeyCache`), the second is one
vector per slot and layer, rotated over the frame's positions; values are kept whole. A
tracked frame then projects only its new memories and its object pointers. The result equals
sam2's to float rounding (tested against `MemoryAttention.forward`).

`attend` runs the layers as sam2's `MemoryAttentionLayer.forward` does, with the cached keys
and values; it needs eval mode, no gradients, and sam2's layer types (`supports_key_cache`).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2.modeling.position_encoding import apply_rotary_enc
from sam2.modeling.sam.transformer import Attention, RoPEAttention

DEFAULT_CACHE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class MemoryFrame:
    """One remembered frame as memory attention takes it.

    Attributes
    ----------
    features : Tensor
        ``(B, mem_dim, H, W)`` the memory encoder's output, as stored (any dtype/device).
    pos_enc : Tensor
        ``(1 or B, mem_dim, H, W)`` its spatial positional encoding.
    t_pos : int
        sam2's temporal slot: the frame gets ``maskmem_tpos_enc[num_maskmem - t_pos - 1]``.
    """

    features: torch.Tensor
    pos_enc: torch.Tensor
    t_pos: int


@dataclass
class _Entry:
    """One memory frame's keys (rotated, without the temporal term) and values, per layer,
    each ``(B, heads, H*W, head_dim)``."""

    base: weakref.ref
    pos_enc: torch.Tensor
    signature: tuple
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


@dataclass
class MemoryKeyCache:
    """Projected keys and values of memory frames, kept between tracked frames.

    Entries are grouped by scope (one per tracked object): a step keeps the entries it used
    and drops the scope's others, since tracking moves on and a frame that left the memory
    window does not come back into it. New entries are kept while the total stays within
    ``max_bytes``; beyond it they are computed and not kept (with objects tracked in turn, a
    least-recently-used rule would evict every entry just before its next use). Not
    thread-safe: one session step at a time uses it (the session's one-writer rule).

    Parameters
    ----------
    max_bytes : int
        Upper bound of the kept keys and values (at 1024 px an entry of a SAM 2.1 network is
        32 MiB in fp32: 4 layers x keys and values x 4096 tokens x 256 channels).
    """

    max_bytes: int = DEFAULT_CACHE_BYTES
    hits: int = 0
    misses: int = 0
    _scopes: dict[Hashable, dict[tuple, _Entry]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if int(self.max_bytes) < 0:
            raise ValueError(f"max_bytes must be >= 0, got {self.max_bytes!r}")

    @property
    def nbytes(self) -> int:
        """Bytes of the keys and values kept."""
        return sum(e.nbytes for entries in self._scopes.values() for e in entries.values())

    def scope(self, name: Hashable) -> KeyScope:
        """The entries of one tracked object (created empty)."""
        return KeyScope(self, name)

    def drop(self, name: Hashable) -> None:
        """Forget a scope's entries (an object removed)."""
        self._scopes.pop(name, None)

    def clear(self) -> None:
        self._scopes.clear()


@dataclass(frozen=True)
class KeyScope:
    """The `MemoryKeyCache` entries of one tracked object."""

    cache: MemoryKeyCache
    name: Hashable


def supports_key_cache(attention: torch.nn.Module) -> bool:
    """Whether `attend` can run ``attention``: sam2's `MemoryAttention` (batch first) of
    `MemoryAttentionLayer` layers with (RoPE) attention, in eval mode, without gradients."""
    return (
        type(attention) is MemoryAttention
        and attention.batch_first
        and not attention.training
        and not torch.is_grad_enabled()
        and all(
            type(layer) is MemoryAttentionLayer
            and type(layer.cross_attn_image) in (Attention, RoPEAttention)
            for layer in attention.layers
        )
    )


def attend(
    attention: MemoryAttention,
    *,
    curr: torch.Tensor,
    curr_pos: torch.Tensor,
    frames: Sequence[MemoryFrame],
    tpos_enc: torch.Tensor,
    pointers: torch.Tensor | None,
    pointer_pos: torch.Tensor | None,
    scope: KeyScope | None,
) -> torch.Tensor:
    """sam2's memory attention of the current frame to ``frames`` and object pointers.

    Parameters
    ----------
    attention : MemoryAttention
        The network's ``memory_attention`` (`supports_key_cache` must hold).
    curr, curr_pos : Tensor
        ``(H*W, B, C)`` the current frame's top-level features and positional encoding.
    frames : sequence of MemoryFrame
        The mask memories, in sam2's order (they come first among the memory tokens).
    tpos_enc : Tensor
        The network's ``maskmem_tpos_enc`` ``(num_maskmem, 1, 1, mem_dim)``.
    pointers, pointer_pos : Tensor or None
        ``(P, B, mem_dim)`` object pointer tokens and their encodings (no rotary encoding).
    scope : KeyScope or None
        Where keys and values of the frames are kept between calls (None: nothing is kept).

    Returns
    -------
    Tensor
        ``(H*W, B, C)`` the conditioned features (sam2's output layout).
    """
    num_maskmem = tpos_enc.shape[0]
    output = curr
    if attention.pos_enc_at_input and curr_pos is not None:
        output = output + 0.1 * curr_pos
    output, curr_pos = output.transpose(0, 1), curr_pos.transpose(0, 1)
    dtype = curr.dtype
    entries = _entries(attention, frames, dtype, scope)
    if pointers is not None:
        pointers = pointers.transpose(0, 1)
        pointer_pos = pointer_pos.transpose(0, 1)

    tokens = curr.shape[0]
    for index, layer in enumerate(attention.layers):
        attn = layer.cross_attn_image
        output = layer._forward_sa(output, curr_pos)
        tgt2 = layer.norm2(output)
        query = tgt2 + curr_pos if layer.pos_enc_at_cross_attn_queries else tgt2
        query = attn._separate_heads(attn.q_proj(query), attn.num_heads)
        freqs = _freqs(attn, tokens, query.device) if isinstance(attn, RoPEAttention) else None
        if freqs is not None:
            query = _rotate(query, freqs)

        slot_keys: dict[int, torch.Tensor] = {}  # t_pos -> its temporal term of the keys
        keys, values = [], []
        for frame, entry in zip(frames, entries, strict=True):
            key = entry.keys[index]
            if layer.pos_enc_at_cross_attn_keys:
                if frame.t_pos not in slot_keys:
                    encoding = tpos_enc[num_maskmem - frame.t_pos - 1]
                    slot_keys[frame.t_pos] = _slot_key(attn, encoding, key.shape[0], tokens, freqs)
                key = key + slot_keys[frame.t_pos]
            keys.append(key)
            values.append(entry.values[index])
        if pointers is not None:
            pointer_in = pointers + pointer_pos if layer.pos_enc_at_cross_attn_keys else pointers
            keys.append(attn._separate_heads(attn.k_proj(pointer_in), attn.num_heads))
            values.append(attn._separate_heads(attn.v_proj(pointers), attn.num_heads))
        out = F.scaled_dot_product_attention(
            query, torch.cat(keys, dim=-2), torch.cat(values, dim=-2)
        )
        tgt2 = attn.out_proj(attn._recombine_heads(out))
        output = output + layer.dropout2(tgt2)
        tgt2 = layer.norm3(output)
        tgt2 = layer.linear2(layer.dropout(layer.activation(layer.linear1(tgt2))))
        output = output + layer.dropout3(tgt2)
    return attention.norm(output).transpose(0, 1)


def _slot_key(
    attn: Attention,
    encoding: torch.Tensor,
    batch: int,
    tokens: int,
    freqs: torch.Tensor | None,
) -> torch.Tensor:
    """A temporal slot's part of the keys, ``W_k tpos`` (no bias: the kept part has it) at
    every position of a memory frame, rotary-encoded: ``(B, heads, tokens, head_dim)``."""
    slot = F.linear(encoding.reshape(1, 1, -1), attn.k_proj.weight)
    slot = attn._separate_heads(slot.expand(batch, tokens, -1), attn.num_heads)
    return _rotate(slot, freqs) if freqs is not None else slot


def _entries(
    attention: MemoryAttention,
    frames: Sequence[MemoryFrame],
    dtype: torch.dtype,
    scope: KeyScope | None,
) -> list[_Entry]:
    """Each frame's keys and values: kept ones where still valid, else projected now. The
    scope then holds this step's entries (kept ones first) as far as the cache has room."""
    signature = _signature(attention, dtype)
    if scope is None:
        return [_project(attention, frame, dtype, signature) for frame in frames]
    cache = scope.cache
    kept = cache._scopes.pop(scope.name, {})
    used: dict[tuple, _Entry] = {}
    found = []
    for frame in frames:
        key = _identity(frame.features)
        entry = used.get(key) or kept.get(key)
        if (
            entry is not None
            and entry.base() is _base(frame.features)
            and entry.pos_enc is frame.pos_enc
            and entry.signature == signature
        ):
            cache.hits += 1
        else:
            cache.misses += 1
            entry = _project(attention, frame, dtype, signature)
        used[key] = entry
        found.append(entry)
    room = cache.max_bytes - cache.nbytes
    admitted = {}
    for key, entry in sorted(used.items(), key=lambda item: kept.get(item[0]) is not item[1]):
        if entry.nbytes <= room:
            admitted[key] = entry
            room -= entry.nbytes
    if admitted:
        cache._scopes[scope.name] = admitted
    return found


def _base(features: torch.Tensor) -> torch.Tensor:
    return features._base if features._base is not None else features


def _identity(features: torch.Tensor) -> tuple:
    """The stored tensor a memory is (or is a view of) and where in it: views made afresh for
    each step (``entry.features[None]``) find the same entry."""
    return (
        id(_base(features)),
        features.storage_offset(),
        tuple(features.shape),
        tuple(features.stride()),
    )


def _signature(attention: MemoryAttention, dtype: torch.dtype) -> tuple:
    """What kept keys and values were computed with: compute dtype, autocast, the projection
    weights (identity and in-place version: fine-tuning in place changes them)."""
    device_type = attention.norm.weight.device.type
    return (
        dtype,
        torch.is_autocast_enabled(device_type),
        torch.get_autocast_dtype(device_type),
        tuple((id(p), p._version) for p in _projections(attention)),
    )


def _projections(attention: MemoryAttention) -> list[torch.Tensor]:
    found = []
    for layer in attention.layers:
        attn = layer.cross_attn_image
        found += [attn.k_proj.weight, attn.k_proj.bias, attn.v_proj.weight, attn.v_proj.bias]
    return [p for p in found if p is not None]


def _project(
    attention: MemoryAttention, frame: MemoryFrame, dtype: torch.dtype, signature: tuple
) -> _Entry:
    device = attention.norm.weight.device
    memory = frame.features.to(device, dtype).flatten(2).transpose(1, 2)  # (B, HW, mem_dim)
    pos = frame.pos_enc.to(device).flatten(2).transpose(1, 2)
    tokens = memory.shape[1]
    keys, values = [], []
    for layer in attention.layers:
        attn = layer.cross_attn_image
        key_in = memory + pos if layer.pos_enc_at_cross_attn_keys else memory
        key = attn._separate_heads(attn.k_proj(key_in), attn.num_heads)
        if isinstance(attn, RoPEAttention):
            key = _rotate(key, _freqs(attn, tokens, key.device))
        keys.append(key.contiguous())
        values.append(attn._separate_heads(attn.v_proj(memory), attn.num_heads).contiguous())
    return _Entry(weakref.ref(_base(frame.features)), frame.pos_enc, signature, keys, values)


def _freqs(attn: RoPEAttention, tokens: int, device: torch.device) -> torch.Tensor:
    """The rotary frequencies of a square map of ``tokens`` positions, as sam2 keeps them."""
    attn.freqs_cis = attn.freqs_cis.to(device)
    if attn.freqs_cis.shape[0] != tokens:
        side = math.sqrt(tokens)
        attn.freqs_cis = attn.compute_cis(end_x=side, end_y=side).to(device)
    return attn.freqs_cis


def _rotate(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """sam2's rotary encoding of ``x`` ``(B, heads, tokens, head_dim)`` (its query path)."""
    rotated, _ = apply_rotary_enc(x, x[..., :0, :], freqs_cis=freqs)
    return rotated
