"""``(Z, Y, X)`` volumes with ground truth: ellipsoidal nuclei and MRI/CT-like organs whose
cross-sections grow, shrink, appear and vanish through the slices."""

from __future__ import annotations

import numpy as np

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

__all__ = ["nuclei_volume", "organ_stack", "organ_volume"]


def organ_volume(
    shape: tuple[int, int, int] = (24, 128, 128),
    seed: int = 0,
    degradation: Degradation | None = None,
) -> SyntheticSample:
    """A volume of organ-like regions whose cross-sections grow, shrink, appear and vanish."""
    shape = check_shape(shape, 3, "shape")
    return organ_stack(shape, seed, degradation, kind="organ-volume", squeeze=False)


def nuclei_volume(
    shape: tuple[int, int, int] = (24, 128, 128),
    seed: int = 0,
    radius: tuple[float, float] = (6.0, 14.0),
    z_scale: float = 0.5,
    density: float = 0.3,
    degradation: Degradation | None = None,
) -> SyntheticSample:
    """A ``(Z, Y, X)`` stack of ellipsoidal nuclei: they appear and vanish through the slices.

    Parameters
    ----------
    shape : (int, int, int)
        ``(Z, Y, X)``.
    seed : int
        Seed.
    radius : (float, float)
        In-plane radius range, pixels.
    z_scale : float
        Slices per in-plane pixel (anisotropy: nuclei span ``2 * radius * z_scale`` slices).
    density : float
        Approximate in-plane coverage.
    degradation : Degradation, optional
        Recording parameters (with intensity drift along Z); random by default.
    """
    shape = check_shape(shape, 3, "shape")
    rng = np.random.default_rng(seed)
    depth = shape[0]
    centres, radii = place_objects(shape[1:], rng, radius, density * 1.6)
    z = rng.uniform(-0.1 * depth, 1.1 * depth, len(centres))
    rz = radii * z_scale * rng.uniform(0.8, 1.3, len(radii))
    centres3 = np.column_stack([z, centres])
    radii3 = np.column_stack([rz, radii, radii * rng.uniform(0.7, 1.0, len(radii))])
    labels, rel = render_blobs(shape, centres3, radii3, rng)
    labels = relabel(labels)
    clean = nuclear_intensity(labels, rel, rng)
    degradation = degradation or Degradation.random(rng, stack=True)
    image = degrade(clean, rng, degradation, axis=0)
    return SyntheticSample(to_uint16(image), labels, 0, "nuclei-volume")


def organ_stack(
    shape: tuple[int, int, int],
    seed: int,
    degradation: Degradation | None,
    kind: str,
    squeeze: bool,
) -> SyntheticSample:
    """Organ-like regions in a body outline, ``(Z, Y, X)`` float32; ``squeeze`` (with
    ``Z == 1``) returns the single slice as a 2-D image (`organ_image`)."""
    rng = np.random.default_rng(seed)
    depth, height, width = shape
    zz, yy, xx = np.meshgrid(
        np.linspace(-1, 1, depth) if depth > 1 else np.zeros(1),
        np.linspace(-1, 1, height),
        np.linspace(-1, 1, width),
        indexing="ij",
    )
    body = (yy / rng.uniform(0.75, 0.95)) ** 2 + (xx / rng.uniform(0.8, 0.98)) ** 2 < 1.0
    clean = np.where(body, rng.uniform(0.25, 0.4), 0.02).astype(np.float32)
    clean += np.where(body, 0.05 * smooth_field(shape, rng, scale=3), 0.0)
    labels = np.zeros(shape, np.int32)
    count = int(rng.integers(2, 5))
    for index in range(1, count + 1):
        centre = rng.uniform(-0.45, 0.45, 3)
        radius = rng.uniform(0.15, 0.4, 3)
        radius[0] = rng.uniform(0.4, 0.9)
        if depth == 1:
            centre[0] = 0.0
        distance = np.sqrt(
            ((zz - centre[0]) / radius[0]) ** 2
            + ((yy - centre[1]) / radius[1]) ** 2
            + ((xx - centre[2]) / radius[2]) ** 2
        )
        # Low-frequency noise on the distance makes lobed, organ-like outlines.
        distance = distance + 0.25 * smooth_field(shape, rng, scale=max(height, width) / 10)
        organ = (distance < 1.0) & body
        labels[organ] = index
        level = rng.uniform(0.45, 1.0) * rng.choice([1.0, -1.0]) * 0.5 + 0.5
        texture = rng.uniform(0.03, 0.12) * smooth_field(shape, rng, scale=rng.uniform(1, 3))
        clean[organ] = (level + texture)[organ]
    labels = relabel(drop_small(labels, min_size=30))
    degradation = degradation or Degradation.random(rng, stack=depth > 1)
    image = degrade(clean, rng, degradation, axis=0 if depth > 1 else None)
    if squeeze:
        return SyntheticSample(image[0], labels[0], None, kind)
    return SyntheticSample(image, labels, 0, kind)
