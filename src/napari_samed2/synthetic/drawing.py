"""Drawing blocks shared by the scenes, volumes and time-lapses: placing and rasterising
wobbly blobs, nuclear texture, smooth random fields, and tidying label ids."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "drop_small",
    "nuclear_intensity",
    "place_objects",
    "relabel",
    "render_blobs",
    "smooth_field",
]


def place_objects(
    plane: tuple[int, int],
    rng: np.random.Generator,
    radius: tuple[float, float],
    density: float,
    max_count: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(N, 2)`` and radii ``(N,)`` of roughly non-overlapping objects (some touch)."""
    area = plane[0] * plane[1]
    mean_area = np.pi * np.mean(np.square(radius))
    target = max_count or max(1, int(density * area / mean_area))
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for _ in range(target * 20):
        if len(centres) >= target:
            break
        r = rng.uniform(*radius)
        c = rng.uniform(0, 1, 2) * plane
        if centres:
            gap = np.hypot(*(np.array(centres) - c).T) - np.array(radii) - r
            # Touching is allowed (a slight overlap); real overlap of centres is not.
            if gap.min() < -0.35 * r:
                continue
        centres.append(c)
        radii.append(r)
    return np.array(centres).reshape(-1, 2), np.array(radii)


def render_blobs(
    shape: tuple[int, ...],
    centres: np.ndarray,
    radii: np.ndarray,
    rng: np.random.Generator,
    angles: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise wobbly ellipses/ellipsoids; overlaps go to the object whose centre is nearer.

    ``radii`` is ``(N,)`` (round, with random elongation) or ``(N, ndim)``. Returns the labels
    (1..N, int32) and each pixel's normalised distance from its object's centre (0..1, float32).
    """
    ndim = len(shape)
    count = len(centres)
    if radii.ndim == 1:
        elongation = rng.uniform(0.7, 1.0, count)
        radii = np.column_stack([radii] * (ndim - 1) + [radii * elongation])
    if angles is None:
        angles = rng.uniform(0, np.pi, count)
    wobble = rng.uniform(0.0, 0.12, (count, 2))
    phase = rng.uniform(0, 2 * np.pi, (count, 2))
    labels = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf, np.float32)
    for index in range(count):
        centre, radius = centres[index], radii[index]
        reach = radius.max() * 1.2 + 1
        lo = np.maximum(np.floor(centre - reach).astype(int), 0)
        hi = np.minimum(np.ceil(centre + reach).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij")
        offsets = [g - c for g, c in zip(grids, centre, strict=True)]
        dy, dx = offsets[-2], offsets[-1]
        cos, sin = np.cos(angles[index]), np.sin(angles[index])
        u, v = cos * dy + sin * dx, -sin * dy + cos * dx
        theta = np.arctan2(u, v)
        # A smooth angular perturbation of the outline: nuclei are not perfect ellipses.
        outline = (
            1.0
            + wobble[index, 0] * np.sin(2 * theta + phase[index, 0])
            + wobble[index, 1] * np.sin(3 * theta + phase[index, 1])
        )
        squared = (u / radius[-2]) ** 2 + (v / radius[-1]) ** 2
        if ndim == 3:
            squared = squared + (offsets[0] / radius[0]) ** 2
        distance = np.sqrt(squared) / outline
        window = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        wins = (distance < 1.0) & (distance < best[window])
        labels[window][wins] = index + 1
        best[window][wins] = distance[wins]
    rel = np.where(labels > 0, best, 1.0).astype(np.float32)
    return labels, rel


def nuclear_intensity(labels: np.ndarray, rel: np.ndarray, rng: np.random.Generator):
    """Bright nuclei of varied brightness, dimmer at the rim, with chromatin texture."""
    brightness = rng.uniform(0.25, 1.0, labels.max() + 1).astype(np.float32)
    brightness[0] = 0.0
    texture = 1.0 + 0.25 * smooth_field(labels.shape, rng, scale=1.5)
    return brightness[labels] * (1.0 - 0.4 * rel**2) * texture


def smooth_field(shape, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to about [-1, 1] (float32)."""
    noise = rng.standard_normal(shape).astype(np.float32)
    sigma = [scale] * len(shape)
    if len(shape) == 3 and shape[0] == 1:
        sigma[0] = 0.0
    field_ = ndi.gaussian_filter(noise, sigma)
    peak = float(np.abs(field_).max()) or 1.0
    return field_ / peak


def drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Objects under ``min_size`` pixels become background; the rest are renumbered 1..N."""
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    labels = labels.copy()
    labels[small[labels]] = 0
    return relabel(labels)


def relabel(labels: np.ndarray) -> np.ndarray:
    """Consecutive ids 1..N in increasing order of the old ids (0 stays background)."""
    present = np.unique(labels[labels > 0])
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    return lut[labels]
