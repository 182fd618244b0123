"""SAMed-2's temporal adapter inside SAM2's Hiera trunk.

The layout (module names, placement, window pairing) reproduces the released SAMed-2 weights
exactly, so that `latest_epoch_0217.pth` loads with a strict key check.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sam2.modeling.backbones.hieradet import Hiera, MultiScaleBlock, do_pool
from sam2.modeling.backbones.utils import window_partition, window_unpartition
from torch import nn

ADAPTER_CHANNELS = 32
PAIR_SIZE = 2  # "d_size" in the released code: the adapter always mixes pairs of feature maps


class TemporalAdapter(nn.Module):
    """Bottleneck adapter with a 3x3x3 convolution over pairs of feature maps.

    Input and output are ``[N, h, w, C]`` with ``N`` even; items ``(2k, 2k+1)`` form a pair.
    In windowed blocks those items are consecutive *windows*, in global blocks consecutive
    *images*: this is how the released weights were trained, so it is kept as it is.
    """

    def __init__(self, dim: int, channels: int = ADAPTER_CHANNELS):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear_down = nn.Linear(dim, channels)
        self.conv = nn.Conv3d(channels, channels, kernel_size=3, stride=1, padding=1)
        self.linear_up = nn.Linear(channels, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = x.shape
        if n % PAIR_SIZE:
            raise ValueError(f"temporal adapter needs an even leading axis, got {n}")
        y = self.linear_down(self.norm(x))
        c = y.shape[-1]
        y = y.view(n // PAIR_SIZE, PAIR_SIZE, h, w, c).permute(0, 4, 1, 2, 3)
        y = self.conv(y)
        y = y.permute(0, 2, 3, 4, 1).reshape(n, h, w, c)
        return x + self.linear_up(F.gelu(y))


class UnusedFusion(nn.Module):
    """Holder for the released checkpoint's ``fancy_fusion`` weights.

    The released network defines this module in every block but never calls it. It exists
    only so that a checkpoint can round-trip byte for byte; it has no forward.
    """

    def __init__(self, dim: int, num_heads: int = 4):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(dim, num_heads)
        self.norm = nn.LayerNorm(dim)


class TemporalBlock(MultiScaleBlock):
    """A Hiera block whose attention output passes through a `TemporalAdapter`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = do_pool(self.proj(x), self.pool)

        window_size = self.window_size
        if window_size > 0:
            height, width = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, window_size)

        x = self.adapter(self.attn(x))
        if self.q_stride:
            window_size = self.window_size // self.q_stride[0]
            height, width = shortcut.shape[1:3]
            pad_h = (window_size - height % window_size) % window_size
            pad_w = (window_size - width % window_size) % window_size
            pad_hw = (height + pad_h, width + pad_w)

        if self.window_size > 0:
            x = window_unpartition(x, window_size, pad_hw, (height, width))

        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class TemporalHiera(Hiera):
    """Hiera trunk with a temporal adapter in every block (SAMed-2).

    The batch is processed as consecutive pairs ``(0, 1), (2, 3), ...``: feed neighbouring
    slices or frames together. An odd batch has its last image paired with a copy of itself
    (as the released 2-D predictor does for a lone image); the copy is dropped from the output.
    """

    def __init__(self, *args, keep_unused_fusion: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        for block in self.blocks:
            # Swapping the class (rather than wrapping) keeps state-dict keys identical to the
            # released checkpoint: blocks.N.adapter.*, not blocks.N.block.adapter.*.
            block.__class__ = TemporalBlock
            block.adapter = TemporalAdapter(block.dim_out)
            if keep_unused_fusion:
                block.fancy_fusion = UnusedFusion(block.dim_out)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        batch = x.shape[0]
        if batch % PAIR_SIZE:
            x = torch.cat([x, x[-1:]], dim=0)
        outputs = super().forward(x)
        return [feats[:batch] for feats in outputs]


def adapter_parameters(net: nn.Module) -> list[nn.Parameter]:
    """The parameters of every temporal adapter in ``net`` (empty for stock SAM2)."""
    return [p for m in net.modules() if isinstance(m, TemporalAdapter) for p in m.parameters()]


def has_temporal_adapter(net: nn.Module) -> bool:
    return any(isinstance(m, TemporalAdapter) for m in net.modules())
