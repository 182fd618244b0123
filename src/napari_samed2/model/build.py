"""Build SAM2 and SAMed-2 networks from config dicts, without hydra's global state."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from sam2.modeling.sam2_base import SAM2Base

from .errors import ModelConfigError, UnsafeCheckpointError
from .safe_config import ALLOWED_TARGETS, check_network_config

TEMPORAL_TRUNK = "napari_samed2.model.temporal_adapter.TemporalHiera"

# What sam2's own video-predictor builder adds on top of every yaml (build_sam.py). Applied
# unless the config sets them, so our nets behave like sam2's predictor out of the box.
PREDICTOR_DEFAULTS: dict[str, Any] = {
    "sam_mask_decoder_extra_args": {
        "dynamic_multimask_via_stability": True,
        "dynamic_multimask_stability_delta": 0.05,
        "dynamic_multimask_stability_thresh": 0.98,
    },
    "binarize_mask_from_pts_for_mem_enc": True,
}


def build_model(
    config: Mapping[str, Any] | DictConfig,
    temporal_adapter: bool = False,
    keep_unused_fusion: bool = False,
    target: str | None = None,
) -> SAM2Base:
    """Build a SAM2 network, optionally with SAMed-2's temporal adapters.

    Parameters
    ----------
    config : mapping
        The ``model:`` mapping of a sam2 yaml file (2.0 or 2.1, any size), as a dict or an
        OmegaConf node. A whole yaml with a top-level ``model`` key is accepted too.
    temporal_adapter : bool
        Add a `TemporalAdapter` to every Hiera block (SAMed-2). The encoder then processes
        images in pairs ``(0, 1), (2, 3), ...``; an odd batch pairs its last image with itself.
    keep_unused_fusion : bool
        Also create the released checkpoint's never-called ``fancy_fusion`` modules, so that
        its full state dict loads and saves unchanged. They are never run.
    target : str, optional
        Class to build instead of ``SAM2Base``, e.g.
        ``sam2.sam2_video_predictor.SAM2VideoPredictor`` for side-by-side comparisons.

    Returns
    -------
    SAM2Base
        The network in eval mode, on the CPU, in float32.

    Raises
    ------
    UnsafeCheckpointError
        The config names a class outside `safe_config.ALLOWED_TARGETS`, uses another hydra
        key or an interpolation, or asks for sizes beyond `safe_config.SIZE_LIMITS`.
    ModelConfigError
        A safe config that sam2 cannot build.
    """
    mapping = _as_dict(config)
    # Before anything is resolved or instantiated: a config may come from a file.
    check_network_config(mapping)
    if "model" in mapping and "_target_" not in mapping:
        mapping = mapping["model"]
    mapping = copy.deepcopy(mapping)
    try:
        _check_required(mapping)
    except (TypeError, AttributeError, KeyError) as error:
        # A mapping of the wrong shape (a list where sam2 has a mapping, ...)
        raise ModelConfigError(f"config does not have sam2's layout: {error!r}") from error
    for key, value in PREDICTOR_DEFAULTS.items():
        if isinstance(value, dict):
            mapping[key] = {**value, **(mapping.get(key) or {})}
        else:
            mapping.setdefault(key, value)
    if target is not None:
        if target not in ALLOWED_TARGETS:
            raise UnsafeCheckpointError(
                f"target={target!r} is not a sam2 or napari-samed2 network class; accepted: "
                f"{', '.join(sorted(ALLOWED_TARGETS))}"
            )
        mapping["_target_"] = target
    if temporal_adapter:
        trunk = mapping["image_encoder"]["trunk"]
        trunk["_target_"] = TEMPORAL_TRUNK
        trunk["keep_unused_fusion"] = keep_unused_fusion
    elif keep_unused_fusion:
        raise ModelConfigError("keep_unused_fusion=True needs temporal_adapter=True")
    try:
        net = instantiate(OmegaConf.create(mapping), _recursive_=True)
    except Exception as error:
        raise ModelConfigError(f"could not build the network from this config: {error}") from error
    return net.eval()


def _as_dict(config: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    if isinstance(config, DictConfig):
        # Unresolved: interpolations are refused by the check, never evaluated.
        return OmegaConf.to_container(config, resolve=False)
    if isinstance(config, Mapping):
        return dict(config)
    raise ModelConfigError(
        f"config must be a mapping (dict or OmegaConf), got {type(config).__name__}"
    )


def _check_required(mapping: dict[str, Any]) -> None:
    required = ("_target_", "image_encoder", "memory_attention", "memory_encoder")
    missing = [key for key in required if key not in mapping]
    if missing:
        raise ModelConfigError(
            f"config is missing {missing}; pass the `model:` mapping of a sam2 yaml file"
        )
    size = mapping.get("image_size", 512)
    if not isinstance(size, int) or size <= 0 or size % 32:
        raise ModelConfigError(f"image_size must be a positive multiple of 32, got {size!r}")
    trunk = mapping["image_encoder"].get("trunk", {})
    stages = list(trunk.get("stages", (2, 3, 16, 3)))
    global_blocks = list(trunk.get("global_att_blocks", (12, 16, 20)))
    stage_starts = [sum(stages[:i]) for i in range(1, len(stages))][: trunk.get("q_pool", 3)]
    # A pooling block with global attention divides by a zero window size in sam2's forward.
    clashing = sorted(set(global_blocks) & set(stage_starts))
    if clashing:
        raise ModelConfigError(
            f"global_att_blocks={global_blocks} puts global attention on block(s) {clashing}, "
            f"the first block of a stage (stages={stages}); sam2 does not support that"
        )
    embed = trunk.get("embed_dim", 96)
    channels = mapping["image_encoder"].get("neck", {}).get("backbone_channel_list")
    if channels is not None and list(channels) != [embed * 8, embed * 4, embed * 2, embed]:
        raise ModelConfigError(
            f"neck.backbone_channel_list={list(channels)} must be "
            f"{[embed * 8, embed * 4, embed * 2, embed]} for trunk embed_dim={embed}"
        )


def count_parameters(net) -> int:
    return sum(p.numel() for p in net.parameters())
