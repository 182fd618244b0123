"""Check a network config before hydra builds it, so that a config from a file runs no code.

`build.build_model` hands configs to ``hydra.utils.instantiate``, which imports and calls
whatever a ``_target_`` names. Configs come from files (checkpoint metadata, training
state), so every config is checked first: only the classes of sam2's own yaml files and ours
may be built, hydra's other special keys and OmegaConf interpolations are refused, and the
sizes a config asks for are bounded so a file cannot make us allocate terabytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from omegaconf import Container, OmegaConf

from .errors import UnsafeCheckpointError

# Every `_target_` of sam2's shipped model configs (configs/sam2/*.yaml, configs/sam2.1/*.yaml;
# a test keeps this list equal to them), our temporal trunk, and sam2's video predictor that
# benchmarks and tests build with `build_model(..., target=...)`.
SAM2_CONFIG_TARGETS = frozenset(
    {
        "sam2.modeling.backbones.hieradet.Hiera",
        "sam2.modeling.backbones.image_encoder.FpnNeck",
        "sam2.modeling.backbones.image_encoder.ImageEncoder",
        "sam2.modeling.memory_attention.MemoryAttention",
        "sam2.modeling.memory_attention.MemoryAttentionLayer",
        "sam2.modeling.memory_encoder.CXBlock",
        "sam2.modeling.memory_encoder.Fuser",
        "sam2.modeling.memory_encoder.MaskDownSampler",
        "sam2.modeling.memory_encoder.MemoryEncoder",
        "sam2.modeling.position_encoding.PositionEmbeddingSine",
        "sam2.modeling.sam.transformer.RoPEAttention",
        "sam2.modeling.sam2_base.SAM2Base",
    }
)
ALLOWED_TARGETS = SAM2_CONFIG_TARGETS | {
    "napari_samed2.model.temporal_adapter.TemporalHiera",
    "sam2.sam2_video_predictor.SAM2VideoPredictor",
}

# Largest value each size-like key may take (per element for lists). sam2.1-large at 2048 px
# asks for: image_size 2048, embed_dim 144, stages (2, 6, 36, 4), d_model 256,
# dim_feedforward 2048, num_maskmem 7, window_spec (8, 4, 16, 8), feat_sizes (128, 128).
SIZE_LIMITS: dict[str, int] = {
    "image_size": 8192,
    "embed_dim": 1024,
    "num_heads": 64,
    "stages": 128,
    "global_att_blocks": 512,
    "window_spec": 256,
    "window_pos_embed_bkg_spatial_size": 256,
    "q_pool": 16,
    "backbone_channel_list": 8192,
    "d_model": 2048,
    "dim": 2048,
    "in_dim": 2048,
    "out_dim": 2048,
    "embedding_dim": 2048,
    "kv_in_dim": 2048,
    "num_pos_feats": 2048,
    "num_layers": 32,
    "dim_feedforward": 16384,
    "num_maskmem": 64,
    "feat_sizes": 1024,
    "kernel_size": 64,
    "stride": 64,
    "padding": 64,
    "total_stride": 64,
    "downsample_rate": 64,
    "max_cond_frames_in_attn": 4096,
    "max_obj_ptrs_in_encoder": 4096,
    "memory_temporal_stride_for_eval": 4096,
}
FACTOR_LIMITS: dict[str, float] = {"dim_mul": 4.0, "head_mul": 4.0}
MAX_TRUNK_BLOCKS = 256
MAX_TRUNK_PARAMETERS = 2_000_000_000  # ~8 GB in float32; sam2.1-large's trunk has ~213M
MAX_TARGETS = 64  # sam2's configs build 14 objects
MAX_DEPTH = 16  # sam2's configs nest 5 levels
MAX_LIST_LENGTH = 1024
HYDRA_SPECIAL = "_target_"


def check_network_config(config: Any, source: str | None = None) -> None:
    """Raise unless ``config`` is a plain sam2-style network config that is safe to build.

    Parameters
    ----------
    config : mapping
        The ``model:`` mapping (or a whole config with a top-level ``model`` key), as plain
        Python containers, not yet resolved by OmegaConf.
    source : str, optional
        Where the config was read from (a file), named in the error.

    Raises
    ------
    UnsafeCheckpointError
        Naming the key path (e.g. ``image_encoder.trunk._target_``), the value and what is
        accepted: a ``_target_`` outside `ALLOWED_TARGETS`, another hydra key (``_partial_``,
        ``_args_``, ``_recursive_``, ...), an interpolation or resolver (``${...}``), a value
        that is not JSON-like, a size beyond `SIZE_LIMITS`, or a trunk too large to build.
    """
    where = f" in {source}" if source else ""
    if isinstance(config, Container):
        config = OmegaConf.to_container(config, resolve=False)
    if not isinstance(config, Mapping):
        raise UnsafeCheckpointError(
            f"the network config{where} must be a mapping, got {type(config).__name__}"
        )
    targets: list[str] = []
    _walk(config, "", 0, targets, where)
    wrapped = "model" in config and "_target_" not in config
    model = config["model"] if wrapped else config
    if isinstance(model, Mapping):
        _check_trunk(model, "model." if wrapped else "", where)


def _walk(node: Any, path: str, depth: int, targets: list[str], where: str) -> None:
    if isinstance(node, Container):
        # Reading an OmegaConf node's values would evaluate its interpolations: read raw.
        node = OmegaConf.to_container(node, resolve=False)
    if depth > MAX_DEPTH:
        _refuse(path, f"nests deeper than {MAX_DEPTH} levels", where)
    if isinstance(node, Mapping):
        for key, value in node.items():
            if not isinstance(key, str):
                _refuse(f"{path}[{key!r}]", "is not a string key", where)
            child = f"{path}.{key}" if path else key
            _check_key(key, value, child, targets, where)
            _walk(value, child, depth + 1, targets, where)
    elif isinstance(node, (list, tuple)):
        if len(node) > MAX_LIST_LENGTH:
            _refuse(path, f"has {len(node)} items; the limit is {MAX_LIST_LENGTH}", where)
        for index, value in enumerate(node):
            _walk(value, f"{path}[{index}]", depth + 1, targets, where)
    elif isinstance(node, str):
        if "${" in node:
            _refuse(
                path,
                f"is {node!r}: interpolations and resolvers (${{...}}) are not accepted in a "
                "network config",
                where,
            )
    elif isinstance(node, float):
        if not math.isfinite(node):
            _refuse(path, f"is {node!r}; only finite numbers are accepted", where)
    elif node is not None and not isinstance(node, (bool, int)):
        _refuse(
            path,
            f"is a {type(node).__name__}; only mappings, lists, strings, numbers, booleans "
            "and null are accepted",
            where,
        )


def _check_key(key: str, value: Any, path: str, targets: list[str], where: str) -> None:
    if "${" in key:
        _refuse(path, "is an interpolation used as a key; not accepted", where)
    if key == HYDRA_SPECIAL:
        if not isinstance(value, str) or value not in ALLOWED_TARGETS:
            _refuse(
                path,
                f"is {value!r}, which is not a sam2 or napari-samed2 network class; accepted: "
                f"{', '.join(sorted(ALLOWED_TARGETS))}",
                where,
            )
        targets.append(value)
        if len(targets) > MAX_TARGETS:
            _refuse(path, f"is object number {len(targets)}; the limit is {MAX_TARGETS}", where)
    elif len(key) > 2 and key.startswith("_") and key.endswith("_"):
        # hydra reads _partial_, _args_, _recursive_, _convert_ (and may add more): only
        # _target_ is needed to build a network.
        _refuse(path, f"is a hydra special key; only {HYDRA_SPECIAL} is accepted", where)
    elif key in SIZE_LIMITS:
        _check_size(value, path, SIZE_LIMITS[key], where)
    elif key in FACTOR_LIMITS:
        _check_size(value, path, FACTOR_LIMITS[key], where)


def _check_size(value: Any, path: str, limit: float, where: str) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if isinstance(item, (list, tuple, Mapping)):
            _refuse(path, f"is {value!r}; expected a number or a list of numbers", where)
        if isinstance(item, (int, float)) and not 0 <= item <= limit:
            _refuse(path, f"is {value!r}; accepted: 0 to {limit:g}", where)


def _check_trunk(model: Mapping[str, Any], prefix: str, where: str) -> None:
    """Bound the Hiera trunk as a whole: many blocks of a wide stage add up."""
    encoder = model.get("image_encoder")
    trunk = encoder.get("trunk") if isinstance(encoder, Mapping) else None
    if not isinstance(trunk, Mapping):
        return
    stages = trunk.get("stages", (2, 3, 16, 3))
    if not isinstance(stages, (list, tuple)) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in stages
    ):
        _refuse(
            f"{prefix}image_encoder.trunk.stages",
            f"is {stages!r}; expected a list of integers",
            where,
        )
    if sum(stages) > MAX_TRUNK_BLOCKS:
        _refuse(
            f"{prefix}image_encoder.trunk.stages",
            f"is {list(stages)}: {sum(stages)} blocks; the limit is {MAX_TRUNK_BLOCKS}",
            where,
        )
    embed = trunk.get("embed_dim", 96)
    dim_mul = trunk.get("dim_mul", 2.0)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (embed, dim_mul)):
        return  # sam2 rejects these itself; nothing large can come of them
    # A transformer block holds about 12 * dim**2 weights (attention 4, MLP 8).
    parameters = sum(
        12 * (embed * dim_mul**stage) ** 2 * blocks for stage, blocks in enumerate(stages)
    )
    if parameters > MAX_TRUNK_PARAMETERS:
        _refuse(
            f"{prefix}image_encoder.trunk",
            f"(embed_dim={embed}, stages={list(stages)}, dim_mul={dim_mul}) would hold about "
            f"{parameters:.3g} weights; the limit is {MAX_TRUNK_PARAMETERS:.3g}",
            where,
        )


def _refuse(path: str, problem: str, where: str) -> None:
    raise UnsafeCheckpointError(
        f"refused the network config{where}: {path or '<root>'} {problem}. Nothing was built "
        "and no code from the config ran"
    )
