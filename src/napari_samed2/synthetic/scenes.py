"""2-D scenes with ground truth: fluorescent nuclei, membrane-stained cells, tubes, and
MRI/CT-like organs."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .degradation import Degradation, degrade, to_uint16
from .drawing import (
    drop_small,
    nuclear_intensity,
    place_objects,
    relabel,
    render_blobs,
    smooth_field,
)
from .sample import SyntheticSample, check_shape
from .volumes import organ_stack

__all__ = ["cells_image", "nuclei_image", "organ_image", "tubes_image"]


def nuclei_image(
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    radius: tuple[float, float] = (5.0, 14.0),
    density: float = 0.35,
    degradation: Degradation | None = None,
) -> SyntheticSample:
    """Fluorescent nuclei: touching, varied in size, shape, brightness and texture.

    Parameters
    ----------
    shape : (int, int)
        Image size ``(Y, X)``.
    seed : int
        Seed; the same seed gives the same sample.
    radius : (float, float)
        Range of the nuclei's mean radius in pixels.
    density : float
        Approximate fraction of the field covered by nuclei.
    degradation : Degradation, optional
        Recording parameters; random (seeded) by default.

    Returns
    -------
    SyntheticSample
        uint16 image, int32 labels, ``axis=None``.
    """
    shape = check_shape(shape, 2, "shape")
    rng = np.random.default_rng(seed)
    centres, radii = place_objects(shape, rng, radius, density)
    labels, rel = render_blobs(shape, centres, radii, rng)
    clean = nuclear_intensity(labels, rel, rng)
    degradation = degradation or Degradation.random(rng)
    image = degrade(clean, rng, degradation)
    return SyntheticSample(to_uint16(image), labels, None, "nuclei")


def cells_image(
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    cell_size: tuple[float, float] = (18.0, 34.0),
    degradation: Degradation | None = None,
) -> SyntheticSample:
    """Cells outlined by a bright membrane stain (Voronoi tissue), dim cytoplasm.

    Returns a uint16 image whose labels are whole cells (membrane included).
    """
    shape = check_shape(shape, 2, "shape")
    rng = np.random.default_rng(seed)
    size = rng.uniform(*cell_size)
    count = max(2, int(shape[0] * shape[1] / size**2))
    seeds = np.stack([rng.uniform(0, s, count) for s in shape], axis=1)
    owner = _nearest_seed(shape, seeds)
    # The tissue does not fill the field: cells outside a smooth blob are background.
    tissue = smooth_field(shape, rng, scale=max(shape) / 3) > rng.uniform(-0.6, -0.1)
    labels = np.where(tissue, owner + 1, 0).astype(np.int32)
    labels = drop_small(labels, min_size=int(0.25 * size**2))
    boundaries = _boundaries(labels)
    # iterations=0 would dilate until nothing changes in scipy: thin membranes skip the call.
    thick = rng.random() < 0.5
    membrane = ndi.binary_dilation(boundaries) if thick else boundaries
    clean = np.zeros(shape, np.float32)
    brightness = rng.uniform(0.1, 0.3, labels.max() + 1)
    brightness[0] = 0.0
    clean += brightness[labels]
    clean[membrane & (labels > 0)] = rng.uniform(0.7, 1.0)
    clean *= 1.0 + 0.15 * smooth_field(shape, rng, scale=3)
    image = degrade(clean, rng, degradation or Degradation.random(rng))
    return SyntheticSample(to_uint16(image), labels, None, "cells")


def tubes_image(
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    count: int | None = None,
    width: tuple[float, float] = (3.0, 9.0),
    degradation: Degradation | None = None,
) -> SyntheticSample:
    """Tubular structures (vessels, neurites, filaments): smooth random curves of varied width.

    Where tubes cross, the tube drawn last owns the crossing.
    """
    shape = check_shape(shape, 2, "shape")
    rng = np.random.default_rng(seed)
    count = count if count is not None else int(rng.integers(3, 8))
    labels = np.zeros(shape, np.int32)
    clean = np.zeros(shape, np.float32)
    for index in range(1, count + 1):
        line = np.zeros(shape, bool)
        for y, x in _random_curve(shape, rng):
            line[y, x] = True
        radius = rng.uniform(*width) / 2
        tube = ndi.distance_transform_edt(~line) <= radius
        labels[tube] = index
        clean[tube] = rng.uniform(0.4, 1.0)
    labels = relabel(labels)
    image = degrade(clean, rng, degradation or Degradation.random(rng))
    return SyntheticSample(to_uint16(image), labels, None, "tubes")


def organ_image(
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    degradation: Degradation | None = None,
) -> SyntheticSample:
    """Large textured organ-like regions inside a body outline (MRI/CT-like, float32).

    Labels are the organs (2-4 per image); the body itself is background.
    """
    shape = check_shape(shape, 2, "shape")
    return organ_stack((1, *shape), seed, degradation, kind="organs", squeeze=True)


def _random_curve(plane, rng) -> np.ndarray:
    """Integer ``(N, 2)`` points of a smooth random curve crossing the field."""
    height, width = plane
    position = rng.uniform(0, 1, 2) * plane
    heading = rng.uniform(0, 2 * np.pi)
    steps = int(2 * (height + width))
    turn = ndi.gaussian_filter1d(rng.normal(0, 1.0, steps), 20)
    turn *= rng.uniform(0.005, 0.03) / (np.abs(turn).max() + 1e-9)
    heading = heading + np.cumsum(turn)
    moves = np.column_stack([np.sin(heading), np.cos(heading)]) * 0.7
    half = steps // 2
    # Grow both ways from the start so the tube crosses the start point.
    forward = position + np.cumsum(moves[half:], axis=0)
    backward = position - np.cumsum(moves[:half], axis=0)
    points = np.round(np.concatenate([backward[::-1], forward])).astype(int)
    inside = (points[:, 0] >= 0) & (points[:, 0] < height)
    inside &= (points[:, 1] >= 0) & (points[:, 1] < width)
    return points[inside]


def _nearest_seed(plane, seeds: np.ndarray) -> np.ndarray:
    marker = np.ones(plane, bool)
    index = np.clip(np.round(seeds).astype(int), 0, np.array(plane) - 1)
    marker[index[:, 0], index[:, 1]] = False
    ids = np.full(plane, -1, np.int32)
    ids[index[:, 0], index[:, 1]] = np.arange(len(index))
    _, (iy, ix) = ndi.distance_transform_edt(marker, return_indices=True)
    return ids[iy, ix]


def _boundaries(labels: np.ndarray) -> np.ndarray:
    edge = np.zeros(labels.shape, bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge
