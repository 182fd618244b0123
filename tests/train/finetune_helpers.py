"""Small label sets and a tiny base checkpoint for the fine-tuning tests (real files)."""

from __future__ import annotations

from pathlib import Path

import torch

from napari_samed2 import synthetic
from napari_samed2.labelset import LabelSet, import_layer
from napari_samed2.model import Preprocessing, build_model, save_checkpoint, small_config

TINY = small_config(image_size=128)


def tiny_base(path: Path, seed: int = 0) -> Path:
    """A tiny SAMed-2-style net (temporal adapters) saved as one of our checkpoints."""
    torch.manual_seed(seed)
    net = build_model(TINY, temporal_adapter=True)
    return save_checkpoint(
        path,
        net,
        config=TINY,
        temporal_adapter=True,
        preprocessing=Preprocessing(128, None, None, 0.0),
        name="tiny-base",
    )


def volume_set(path: Path, frames=(3, 6, 9), shape=(12, 64, 64), seed: int = 1) -> LabelSet:
    """A label set of complete slices of a synthetic nuclei volume."""
    sample = synthetic.nuclei_volume(shape=shape, seed=seed)
    labelset = LabelSet.create(path)
    import_layer(labelset, sample.image, sample.labels, image_name="volume", frames=list(frames))
    return labelset
