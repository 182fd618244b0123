"""Network configurations: the `model:` mappings of sam2's own yaml files, and small nets.

A configuration is a plain dict in sam2's hydra format (``_target_`` keys); `build.build_model`
turns it into a network. Nothing here touches hydra's global state.
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

from omegaconf import OmegaConf

SAM2_CONFIG_FILES = {
    "sam2-tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2-small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2-base-plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2-large": "configs/sam2/sam2_hiera_l.yaml",
    "sam2.1-tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1-small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1-base-plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1-large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


def sam2_config(name: str, image_size: int | None = None) -> dict[str, Any]:
    """The ``model:`` mapping of one of sam2's shipped yaml files, as a plain dict.

    Parameters
    ----------
    name : str
        One of `SAM2_CONFIG_FILES` (``"sam2.1-tiny"``, ``"sam2-small"``, ...).
    image_size : int, optional
        Input size in pixels (multiple of 32); the RoPE feature sizes follow it.
    """
    if name not in SAM2_CONFIG_FILES:
        raise KeyError(f"unknown sam2 config {name!r}; expected one of {sorted(SAM2_CONFIG_FILES)}")
    path = resources.files("sam2").joinpath(SAM2_CONFIG_FILES[name])
    config = OmegaConf.to_container(OmegaConf.load(str(path)).model, resolve=True)
    if image_size is not None:
        set_image_size(config, image_size)
    return config


def set_image_size(config: dict[str, Any], image_size: int) -> None:
    """Set the input size of ``config`` in place, keeping RoPE feature sizes consistent."""
    if image_size <= 0 or image_size % 32:
        raise ValueError(f"image_size must be a positive multiple of 32, got {image_size}")
    config["image_size"] = image_size
    layer = config["memory_attention"]["layer"]
    for key in ("self_attention", "cross_attention"):
        layer[key]["feat_sizes"] = [image_size // 16, image_size // 16]


def small_config(
    *,
    embed_dim: int = 16,
    num_heads: int = 1,
    stages: tuple[int, ...] = (1, 1, 2, 1),
    global_att_blocks: tuple[int, ...] = (3,),
    window_spec: tuple[int, ...] = (8, 4, 4, 2),
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (4, 4),
    d_model: int = 64,
    mem_dim: int = 32,
    memory_layers: int = 1,
    memory_ffn: int = 128,
    num_maskmem: int = 3,
    image_size: int = 256,
) -> dict[str, Any]:
    """A small SAM2.1-style configuration (for tests, CI and the embedded nano model).

    The defaults give the 1.33M-parameter net that tracks 16 frames in about 0.3 s on 2 cores.
    The mask decoder's transformer is fixed by sam2 (depth 2, 8 heads).
    """
    if d_model % 8 or d_model % mem_dim:
        raise ValueError(f"d_model ({d_model}) must be divisible by 8 and by mem_dim ({mem_dim})")
    config = sam2_config("sam2.1-tiny")
    trunk = config["image_encoder"]["trunk"]
    trunk.update(
        embed_dim=embed_dim,
        num_heads=num_heads,
        stages=list(stages),
        global_att_blocks=list(global_att_blocks),
        window_spec=list(window_spec),
        window_pos_embed_bkg_spatial_size=list(window_pos_embed_bkg_spatial_size),
    )
    neck = config["image_encoder"]["neck"]
    neck["d_model"] = d_model
    neck["position_encoding"]["num_pos_feats"] = d_model
    neck["backbone_channel_list"] = [embed_dim * 8, embed_dim * 4, embed_dim * 2, embed_dim]

    attention = config["memory_attention"]
    attention["d_model"] = d_model
    attention["num_layers"] = memory_layers
    layer = attention["layer"]
    layer["d_model"] = d_model
    layer["dim_feedforward"] = memory_ffn
    layer["self_attention"]["embedding_dim"] = d_model
    layer["cross_attention"]["embedding_dim"] = d_model
    layer["cross_attention"]["kv_in_dim"] = mem_dim

    encoder = config["memory_encoder"]
    encoder["out_dim"] = mem_dim
    encoder["in_dim"] = d_model
    encoder["position_encoding"]["num_pos_feats"] = mem_dim
    encoder["mask_downsampler"]["embed_dim"] = d_model
    encoder["fuser"]["layer"]["dim"] = d_model

    config["num_maskmem"] = num_maskmem
    set_image_size(config, image_size)
    return copy.deepcopy(config)
