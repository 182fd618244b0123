"""Crafted network configs and checkpoints for the tests that files never run code."""

import json
from importlib import resources
from pathlib import Path

from safetensors.torch import save_file

from napari_samed2.model import REGISTRY, nano_config, read_checkpoint

NANO = REGISTRY["samed2-nano"]


def opens(marker: Path) -> dict:
    """A config node that creates ``marker`` when hydra instantiates it."""
    return {"_target_": "builtins.open", "file": str(marker), "mode": "w"}


def nano_with(path: str, value) -> dict:
    """The nano config with the node at dotted ``path`` (``a.b`` or ``a.b[1]``) replaced."""
    config = nano_config()
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    if last.endswith("]"):
        key, index = last[:-1].split("[")
        node[key][int(index)] = value
    else:
        node[last] = value
    return config


def write_checkpoint(path: Path, config, preprocessing=None) -> Path:
    """A safetensors file in our format (nano weights) whose metadata holds ``config``."""
    weights = read_checkpoint(resources.files("napari_samed2") / NANO.bundled).state_dict
    metadata = {
        "format_version": "1",
        "name": "crafted",
        "config": json.dumps(config),
        "temporal_adapter": "true",
        "preprocessing": json.dumps(preprocessing or NANO.preprocessing.to_dict()),
    }
    save_file(weights, str(path), metadata=metadata)
    return path
