"""The napari reader of label sets: a folder holding labelset.json (or that file) opens as an
Image and a Labels layer, one pair per group of entries of one shape and dtype.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .format import MANIFEST, LabelSetError
from .store import LabelSet

LayerData = tuple[np.ndarray, dict[str, Any], str]


def get_reader(path: str | os.PathLike | list) -> Callable[[Any], list[LayerData]] | None:
    """napari's reader hook: `read_labelset` for a label set, None for anything else."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_labelset if _set_folder(path) is not None else None


def _set_folder(path: str | os.PathLike) -> Path | None:
    path = Path(path)
    if path.name == MANIFEST and path.is_file():
        return path.parent
    return path if (path / MANIFEST).is_file() else None


def read_labelset(path: str | os.PathLike | list) -> list[LayerData]:
    """Layers for a label set: its entries stacked along a first ``entry`` axis.

    Entries of one frame shape, channel count and image dtype make one Image layer named
    after the set and one Labels layer ``"<name> labels"``; with several such groups, each
    pair's names end with the group, e.g. ``"cells (512x512 uint16)"``. Each layer's
    metadata holds the set's path and the entry ids in stack order. An empty set raises
    `LabelSetError` (napari shows it), not an empty list napari would call a failed read.
    """
    if isinstance(path, list):
        path = path[0]
    folder = _set_folder(path)
    labelset = LabelSet.open(folder if folder is not None else path)
    groups: dict[tuple, list] = {}
    entries = labelset.entries()
    if not entries:
        raise LabelSetError(f"label set {str(labelset.path)!r} has no entries yet: nothing to show")
    for entry in entries:
        groups.setdefault((entry.shape, entry.channels, str(entry.dtype)), []).append(entry)
    layers: list[LayerData] = []
    for (shape, channels, dtype), entries in groups.items():
        name = labelset.name
        if len(groups) > 1:
            name += f" ({'x'.join(map(str, shape))}{f'x{channels}' if channels else ''} {dtype})"
        labels = [entry.labels() for entry in entries]
        label_dtype = np.result_type(*(array.dtype for array in labels))
        metadata = {"labelset": str(labelset.path), "entries": [entry.id for entry in entries]}
        image_kwargs: dict[str, Any] = {"name": name, "metadata": metadata}
        if channels in (3, 4):
            image_kwargs["rgb"] = True
        elif channels:
            image_kwargs["channel_axis"] = -1
        layers.append((np.stack([entry.image() for entry in entries]), image_kwargs, "image"))
        layers.append(
            (
                np.stack([array.astype(label_dtype, copy=False) for array in labels]),
                {"name": f"{name} labels", "metadata": dict(metadata)},
                "labels",
            )
        )
    return layers
