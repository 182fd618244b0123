"""``(Z, Y, X)`` stacks that look like real fluorescence volumes of dense tissue.

What makes such stacks hard for a model trained on clean synthetic volumes: nuclei that start
and end between slices, stacked above and below one another, an axial point-spread function
several slices long (a nucleus shows faintly in slices beyond its end), and camera counts in a
narrow range on a large offset (a low dynamic range uint16).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .drawing import nuclear_intensity, relabel, render_blobs
from .sample import SyntheticSample, check_shape

__all__ = ["tissue_volume"]


def tissue_volume(
    shape: tuple[int, int, int] = (32, 128, 128),
    seed: int = 0,
    radius: tuple[float, float] = (7.0, 13.0),
    depth: tuple[float, float] = (2.0, 4.0),
    density: float = 0.9,
    z_blur: float = 2.0,
    offset: int = 1500,
    signal: float = 150.0,
) -> SyntheticSample:
    """A dense stack of nuclei recorded with a long axial blur and a low dynamic range.

    Parameters
    ----------
    shape : (int, int, int)
        ``(Z, Y, X)``.
    seed : int
        Seed.
    radius : (float, float)
        In-plane radius range, pixels.
    depth : (float, float)
        Axial half-extent range, slices: each nucleus spans about twice that.
    density : float
        Packing in 3-D (fraction of the volume's nuclei-sized cells tried): neighbours lie
        above and below as well as beside each other.
    z_blur : float
        Axial Gaussian blur, slices (in-plane blur is 1 pixel).
    offset : int
        Camera baseline in counts.
    signal : float
        Counts of the brightest nucleus above the baseline (the dynamic range).

    Returns
    -------
    SyntheticSample
        uint16 image, int32 labels, kind ``"tissue-volume"``.
    """
    shape = check_shape(shape, 3, "shape")
    rng = np.random.default_rng(seed)
    centres, radii = _place_3d(shape, rng, radius, depth, density)
    labels, rel = render_blobs(shape, centres, radii, rng)
    labels = relabel(labels)
    clean = nuclear_intensity(labels, rel, rng)
    blurred = ndi.gaussian_filter(clean, (z_blur, 1.0, 1.0))
    background = 0.08 * (1.0 + ndi.gaussian_filter(rng.standard_normal(shape), (2, 12, 12)) * 4)
    expected = offset + signal * (np.clip(background, 0, None) + blurred)
    counts = rng.poisson(np.clip(expected - offset, 0, None)) + offset
    counts = counts + rng.normal(0.0, 3.0, shape)  # read noise
    image = np.clip(np.round(counts), 0, 65535).astype(np.uint16)
    return SyntheticSample(image, labels, 0, "tissue-volume")


def _place_3d(shape, rng, radius, depth, density) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(N, 3)`` and radii ``(N, 3)`` of ellipsoids that barely overlap in 3-D."""
    slices, rows, cols = shape
    mean_volume = (4 / 3) * np.pi * np.mean(depth) * np.mean(radius) ** 2
    target = max(1, int(density * slices * rows * cols / mean_volume))
    centres, radii = np.empty((target, 3)), np.empty((target, 3))
    placed = 0
    for _ in range(target * 30):
        if placed >= target:
            break
        r = rng.uniform(*radius)
        size = np.array([rng.uniform(*depth), r, r * rng.uniform(0.7, 1.0)])
        centre = rng.uniform([-0.5 * size[0], 0, 0], [slices - 1 + 0.5 * size[0], rows, cols])
        if placed:
            # distance in units of the two objects' radii along each axis
            scale = (radii[:placed] + size) / 2
            gap = np.sqrt((((centres[:placed] - centre) / scale) ** 2).sum(-1))
            if gap.min() < 1.6:
                continue
        centres[placed], radii[placed] = centre, size
        placed += 1
    return centres[:placed], radii[:placed]
