"""Synthetic microscopy and MRI/CT-like images with ground-truth instance labels.

Every generator is seeded (same seed, same sample), fast, and returns a `SyntheticSample`:
an image that looks like what an instrument records (blur, uneven illumination, intensity
drift, Poisson and Gaussian noise) and the instance labels of the clean scene it was made from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "GENERATORS",
    "Degradation",
    "SyntheticSample",
    "cells_image",
    "degrade",
    "moving_cells_timelapse",
    "nuclei_image",
    "nuclei_volume",
    "organ_image",
    "organ_volume",
    "tubes_image",
]


@dataclass
class SyntheticSample:
    """An image with its ground-truth instance labels.

    Attributes
    ----------
    image : np.ndarray
        ``(Y, X)``, ``(Z, Y, X)`` or ``(T, Y, X)``; uint16 (fluorescence counts) or float32
        (MRI/CT-like intensities).
    labels : np.ndarray of int32
        Same shape as ``image``; 0 is background, each object keeps its id in every slice or
        frame it appears in.
    axis : int or None
        The propagation axis (0 for volumes and time-lapses), None for a 2-D image.
    kind : str
        Which generator made it (``"nuclei"``, ``"cells"``, ...).
    events : dict
        Object ids that enter, leave, split (``{daughter: parent}``) or fade; empty for 2-D.
    """

    image: np.ndarray
    labels: np.ndarray
    axis: int | None
    kind: str = ""
    events: dict[str, Any] = field(default_factory=dict)

    @property
    def object_ids(self) -> list[int]:
        return [int(i) for i in np.unique(self.labels) if i != 0]


@dataclass(frozen=True)
class Degradation:
    """How the clean scene is turned into a recorded image.

    Attributes
    ----------
    blur_sigma : float
        Gaussian point-spread function, in pixels (in-plane).
    illumination : float
        Relative amplitude of the smooth uneven illumination (0 = flat).
    drift : float
        Relative intensity change from the first to the last slice/frame (bleaching, depth).
    photons : float
        Expected photon count at intensity 1.0; lower means more shot noise (0 = no shot noise).
    read_noise : float
        Standard deviation of the additive Gaussian noise, relative to intensity 1.0.
    background : float
        Offset added before the noise (camera baseline and autofluorescence).
    """

    blur_sigma: float = 1.0
    illumination: float = 0.3
    drift: float = 0.0
    photons: float = 200.0
    read_noise: float = 0.02
    background: float = 0.1

    @classmethod
    def random(cls, rng: np.random.Generator, stack: bool = False) -> Degradation:
        """A random degradation, from mild to hard, with drift only for stacks."""
        return cls(
            blur_sigma=float(rng.uniform(0.5, 2.0)),
            illumination=float(rng.uniform(0.0, 0.6)),
            drift=float(rng.uniform(-0.5, 0.3)) if stack else 0.0,
            photons=float(rng.choice([30.0, 80.0, 200.0, 1000.0])),
            read_noise=float(rng.uniform(0.005, 0.05)),
            background=float(rng.uniform(0.02, 0.2)),
        )


def degrade(
    clean: np.ndarray,
    rng: np.random.Generator,
    degradation: Degradation,
    axis: int | None = None,
) -> np.ndarray:
    """Record ``clean`` through a microscope: blur, illumination, drift, shot and read noise.

    Parameters
    ----------
    clean : np.ndarray of float
        ``(Y, X)`` or ``(N, Y, X)`` intensities around [0, 1].
    rng : np.random.Generator
        Source of the noise.
    degradation : Degradation
        The parameters.
    axis : int, optional
        For stacks, the axis along which intensity drifts (0).

    Returns
    -------
    np.ndarray of float32
        Same shape, non-negative.
    """
    image = clean.astype(np.float32, copy=True)
    in_plane = (0.0,) * (image.ndim - 2) + (degradation.blur_sigma,) * 2
    if degradation.blur_sigma > 0:
        image = ndi.gaussian_filter(image, in_plane)
    if degradation.illumination > 0:
        image *= _illumination_field(image.shape[-2:], rng, degradation.illumination)
    if axis is not None and degradation.drift != 0.0 and image.ndim == 3:
        ramp = 1.0 + degradation.drift * np.linspace(0.0, 1.0, image.shape[axis])
        image *= ramp.reshape([-1 if a == axis else 1 for a in range(image.ndim)])
    image += degradation.background
    if degradation.photons > 0:
        image = rng.poisson(np.clip(image, 0, None) * degradation.photons) / degradation.photons
    image = image + rng.normal(0.0, degradation.read_noise, image.shape)
    return np.clip(image, 0.0, None).astype(np.float32)


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
    shape = _check_shape(shape, 2, "shape")
    rng = np.random.default_rng(seed)
    centres, radii = _place_objects(shape, rng, radius, density)
    labels, rel = _render_blobs(shape, centres, radii, rng)
    clean = _nuclear_intensity(labels, rel, rng)
    degradation = degradation or Degradation.random(rng)
    image = degrade(clean, rng, degradation)
    return SyntheticSample(_to_uint16(image), labels, None, "nuclei")


def cells_image(
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    cell_size: tuple[float, float] = (18.0, 34.0),
    degradation: Degradation | None = None,
) -> SyntheticSample:
    """Cells outlined by a bright membrane stain (Voronoi tissue), dim cytoplasm.

    Returns a uint16 image whose labels are whole cells (membrane included).
    """
    shape = _check_shape(shape, 2, "shape")
    rng = np.random.default_rng(seed)
    size = rng.uniform(*cell_size)
    count = max(2, int(shape[0] * shape[1] / size**2))
    seeds = np.stack([rng.uniform(0, s, count) for s in shape], axis=1)
    owner = _nearest_seed(shape, seeds)
    # The tissue does not fill the field: cells outside a smooth blob are background.
    tissue = _smooth_field(shape, rng, scale=max(shape) / 3) > rng.uniform(-0.6, -0.1)
    labels = np.where(tissue, owner + 1, 0).astype(np.int32)
    labels = _drop_small(labels, min_size=int(0.25 * size**2))
    boundaries = _boundaries(labels)
    # iterations=0 would dilate until nothing changes in scipy: thin membranes skip the call.
    thick = rng.random() < 0.5
    membrane = ndi.binary_dilation(boundaries) if thick else boundaries
    clean = np.zeros(shape, np.float32)
    brightness = rng.uniform(0.1, 0.3, labels.max() + 1)
    brightness[0] = 0.0
    clean += brightness[labels]
    clean[membrane & (labels > 0)] = rng.uniform(0.7, 1.0)
    clean *= 1.0 + 0.15 * _smooth_field(shape, rng, scale=3)
    image = degrade(clean, rng, degradation or Degradation.random(rng))
    return SyntheticSample(_to_uint16(image), labels, None, "cells")


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
    shape = _check_shape(shape, 2, "shape")
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
    labels = _relabel(labels)
    image = degrade(clean, rng, degradation or Degradation.random(rng))
    return SyntheticSample(_to_uint16(image), labels, None, "tubes")


def organ_image(
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    degradation: Degradation | None = None,
) -> SyntheticSample:
    """Large textured organ-like regions inside a body outline (MRI/CT-like, float32).

    Labels are the organs (2-4 per image); the body itself is background.
    """
    shape = _check_shape(shape, 2, "shape")
    return _organ_stack((1, *shape), seed, degradation, kind="organs", squeeze=True)


def organ_volume(
    shape: tuple[int, int, int] = (24, 128, 128),
    seed: int = 0,
    degradation: Degradation | None = None,
) -> SyntheticSample:
    """A volume of organ-like regions whose cross-sections grow, shrink, appear and vanish."""
    shape = _check_shape(shape, 3, "shape")
    return _organ_stack(shape, seed, degradation, kind="organ-volume", squeeze=False)


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
    shape = _check_shape(shape, 3, "shape")
    rng = np.random.default_rng(seed)
    depth = shape[0]
    centres, radii = _place_objects(shape[1:], rng, radius, density * 1.6)
    z = rng.uniform(-0.1 * depth, 1.1 * depth, len(centres))
    rz = radii * z_scale * rng.uniform(0.8, 1.3, len(radii))
    centres3 = np.column_stack([z, centres])
    radii3 = np.column_stack([rz, radii, radii * rng.uniform(0.7, 1.0, len(radii))])
    labels, rel = _render_blobs(shape, centres3, radii3, rng)
    labels = _relabel(labels)
    clean = _nuclear_intensity(labels, rel, rng)
    degradation = degradation or Degradation.random(rng, stack=True)
    image = degrade(clean, rng, degradation, axis=0)
    return SyntheticSample(_to_uint16(image), labels, 0, "nuclei-volume")


def moving_cells_timelapse(
    shape: tuple[int, int, int] = (24, 128, 128),
    seed: int = 0,
    count: int | None = None,
    radius: tuple[float, float] = (7.0, 14.0),
    speed: float = 1.5,
    events: bool = True,
    degradation: Degradation | None = None,
) -> SyntheticSample:
    """A ``(T, Y, X)`` time-lapse of moving, deforming cells.

    With ``events=True`` some cells enter through the border, leave it, divide (the daughters
    get new ids; the mother's id ends) or fade out (bleaching; the label ends when the cell
    drops below a fifth of its brightness).

    Parameters
    ----------
    shape : (int, int, int)
        ``(T, Y, X)``.
    seed : int
        Seed.
    count : int, optional
        Cells present at the start (random by default).
    radius : (float, float)
        Radius range, pixels.
    speed : float
        Typical displacement per frame, pixels.
    events : bool
        Enable entering, leaving, division and fading.
    degradation : Degradation, optional
        Recording parameters (with bleaching drift along T); random by default.
    """
    shape = _check_shape(shape, 3, "shape")
    rng = np.random.default_rng(seed)
    frames, height, width = shape
    plane = (height, width)
    if count is None:
        count = max(2, int(0.25 * height * width / (np.pi * np.mean(radius) ** 2)))
    centres, radii = _place_objects(plane, rng, radius, 1.0, max_count=count)
    cells = [
        _Cell(i + 1, c, r, rng.normal(0, speed, 2), rng.uniform(0.4, 1.0), -1)
        for i, (c, r) in enumerate(zip(centres, radii, strict=True))
    ]
    log: dict[str, Any] = {"enter": [], "leave": [], "split": {}, "fade": []}
    next_id = len(cells) + 1
    if events and frames > 4:
        for cell in rng.choice(cells, size=min(len(cells), 2), replace=False):
            if rng.random() < 0.5:
                cell.fade_from = int(rng.integers(frames // 3, frames - 2))
                log["fade"].append(cell.ident)
        leaving = cells[int(rng.integers(len(cells)))]
        leaving.velocity = _towards_border(leaving.centre, plane) * max(speed, 2.0) * 1.5
        log["leave"].append(leaving.ident)
        entering_at = int(rng.integers(1, frames // 2))
        split_at = int(rng.integers(frames // 3, frames - 3))
    else:
        entering_at = split_at = -1
    labels = np.zeros(shape, np.int32)
    clean = np.zeros(shape, np.float32)
    orientation = {c.ident: rng.uniform(0, np.pi) for c in cells}
    for t in range(frames):
        if t == entering_at:
            cell = _entering_cell(next_id, plane, rng, radius, speed)
            orientation[cell.ident] = rng.uniform(0, np.pi)
            cells.append(cell)
            log["enter"].append(next_id)
            next_id += 1
        if t == split_at:
            moving_on = set(log["leave"]) | set(log["enter"])
            big = [c for c in cells if c.alive and c.fade_from < 0 and c.ident not in moving_on]
            if big:
                mother = max(big, key=lambda c: c.radius)
                mother.alive = False
                for sign in (-1.0, 1.0):
                    offset = sign * mother.radius * 0.55 * np.array([0.3, 1.0])
                    daughter = _Cell(
                        next_id,
                        mother.centre + offset,
                        mother.radius * 0.75,
                        mother.velocity + sign * np.array([0.0, 1.0]),
                        mother.brightness,
                        -1,
                    )
                    orientation[next_id] = orientation[mother.ident]
                    log["split"][next_id] = mother.ident
                    cells.append(daughter)
                    next_id += 1
        live = [c for c in cells if c.alive and c.visible(t)]
        if live:
            centres_t = np.array([c.centre for c in live])
            radii_t = np.array(
                [[c.radius * (1 + 0.1 * np.sin(0.4 * t + c.ident)), c.radius] for c in live]
            )
            angles = np.array([orientation[c.ident] + 0.05 * t for c in live])
            local_rng = np.random.default_rng([seed, t])
            frame_labels, rel = _render_blobs(plane, centres_t, radii_t, local_rng, angles=angles)
            ids = np.array([0] + [c.ident for c in live], np.int32)
            labels[t] = ids[frame_labels]
            brightness = np.array([0.0] + [c.brightness * c.fade(t) for c in live])
            clean[t] = brightness[frame_labels] * (1.0 - 0.35 * rel**2)
        for c in cells:
            c.step(rng, speed, plane, leaving=c.ident in log["leave"] or c.ident in log["enter"])
    present = set(np.unique(labels).tolist()) - {0}
    log = {
        "enter": [i for i in log["enter"] if i in present],
        "leave": [i for i in log["leave"] if i in present],
        "split": {d: m for d, m in log["split"].items() if d in present},
        "fade": [i for i in log["fade"] if i in present],
    }
    degradation = degradation or Degradation.random(rng, stack=True)
    image = degrade(clean, rng, degradation, axis=0)
    return SyntheticSample(_to_uint16(image), labels, 0, "timelapse", log)


GENERATORS = {
    "nuclei": nuclei_image,
    "cells": cells_image,
    "tubes": tubes_image,
    "organs": organ_image,
    "nuclei-volume": nuclei_volume,
    "organ-volume": organ_volume,
    "timelapse": moving_cells_timelapse,
}


# --- scene building blocks -------------------------------------------------------------------


@dataclass
class _Cell:
    ident: int
    centre: np.ndarray
    radius: float
    velocity: np.ndarray
    brightness: float
    fade_from: int
    alive: bool = True

    def fade(self, t: int) -> float:
        if self.fade_from < 0 or t < self.fade_from:
            return 1.0
        return float(0.75 ** (t - self.fade_from + 1))

    def visible(self, t: int) -> bool:
        return self.fade(t) >= 0.2

    def step(
        self, rng: np.random.Generator, speed: float, plane: tuple[int, int], leaving: bool
    ) -> None:
        # Persistent random walk: cells keep most of their direction from frame to frame.
        jitter = rng.normal(0, 0.3 * speed, 2)
        if leaving:
            self.centre = self.centre + self.velocity + 0.3 * jitter
            return
        self.velocity = 0.7 * self.velocity + jitter
        self.centre = self.centre + self.velocity
        # Cells that are not meant to leave bounce off the border.
        for axis in range(2):
            low, high = self.radius * 0.5, plane[axis] - self.radius * 0.5
            if not low <= self.centre[axis] <= high:
                self.centre[axis] = np.clip(self.centre[axis], low, high)
                self.velocity[axis] = -self.velocity[axis]


def _entering_cell(ident, plane, rng, radius, speed) -> _Cell:
    side = int(rng.integers(4))
    r = rng.uniform(*radius)
    along = rng.uniform(0.2, 0.8) * plane[side % 2 == 0]
    if side == 0:
        centre, velocity = (-r, along), (1, 0)
    elif side == 1:
        centre, velocity = (along, plane[1] + r), (0, -1)
    elif side == 2:
        centre, velocity = (plane[0] + r, along), (-1, 0)
    else:
        centre, velocity = (along, -r), (0, 1)
    step = max(speed, 1.5) * 1.5
    return _Cell(ident, np.array(centre, float), r, np.array(velocity, float) * step, 0.8, -1)


def _towards_border(centre: np.ndarray, plane: tuple[int, int]) -> np.ndarray:
    distances = [centre[0], plane[1] - centre[1], plane[0] - centre[0], centre[1]]
    directions = [(-1, 0), (0, 1), (1, 0), (0, -1)]
    return np.array(directions[int(np.argmin(distances))], float)


def _place_objects(
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


def _render_blobs(
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


def _nuclear_intensity(labels: np.ndarray, rel: np.ndarray, rng: np.random.Generator):
    """Bright nuclei of varied brightness, dimmer at the rim, with chromatin texture."""
    brightness = rng.uniform(0.25, 1.0, labels.max() + 1).astype(np.float32)
    brightness[0] = 0.0
    texture = 1.0 + 0.25 * _smooth_field(labels.shape, rng, scale=1.5)
    return brightness[labels] * (1.0 - 0.4 * rel**2) * texture


def _organ_stack(shape, seed, degradation, kind, squeeze) -> SyntheticSample:
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
    clean += np.where(body, 0.05 * _smooth_field(shape, rng, scale=3), 0.0)
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
        distance = distance + 0.25 * _smooth_field(shape, rng, scale=max(height, width) / 10)
        organ = (distance < 1.0) & body
        labels[organ] = index
        level = rng.uniform(0.45, 1.0) * rng.choice([1.0, -1.0]) * 0.5 + 0.5
        texture = rng.uniform(0.03, 0.12) * _smooth_field(shape, rng, scale=rng.uniform(1, 3))
        clean[organ] = (level + texture)[organ]
    labels = _relabel(_drop_small(labels, min_size=30))
    degradation = degradation or Degradation.random(rng, stack=depth > 1)
    image = degrade(clean, rng, degradation, axis=0 if depth > 1 else None)
    if squeeze:
        return SyntheticSample(image[0], labels[0], None, kind)
    return SyntheticSample(image, labels, 0, kind)


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


def _smooth_field(shape, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to about [-1, 1] (float32)."""
    noise = rng.standard_normal(shape).astype(np.float32)
    sigma = [scale] * len(shape)
    if len(shape) == 3 and shape[0] == 1:
        sigma[0] = 0.0
    field_ = ndi.gaussian_filter(noise, sigma)
    peak = float(np.abs(field_).max()) or 1.0
    return field_ / peak


def _illumination_field(plane, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Smooth multiplicative illumination: a tilted plane times a broad Gaussian spot."""
    yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in plane], indexing="ij")
    cy, cx = rng.uniform(-0.5, 0.5, 2)
    spot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(0.5, 2.0))
    tilt = rng.uniform(-1, 1) * yy + rng.uniform(-1, 1) * xx
    field_ = 1.0 - amplitude + amplitude * (0.6 * spot + 0.2 * (tilt + 1))
    return field_.astype(np.float32)


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


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    labels = labels.copy()
    labels[small[labels]] = 0
    return _relabel(labels)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Consecutive ids 1..N in increasing order of the old ids (0 stays background)."""
    present = np.unique(labels[labels > 0])
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    return lut[labels]


def _to_uint16(image: np.ndarray) -> np.ndarray:
    """Camera counts: intensity 1.0 maps to about 4000 counts on a 100-count baseline."""
    return np.clip(image * 4000.0 + 100.0, 0, 65535).astype(np.uint16)


def _check_shape(shape, ndim: int, name: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError as error:
        raise TypeError(f"{name} must be a tuple of {ndim} ints, got {shape!r}") from error
    if len(shape) != ndim or min(shape) < 1 or min(shape[-2:]) < 16:
        raise ValueError(
            f"{name} must be {ndim} positive ints with the last two >= 16, got {shape!r}"
        )
    return shape
