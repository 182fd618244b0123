"""How a clean scene becomes a recorded image: blur, uneven illumination, intensity drift,
shot and read noise, camera counts, and frames lost to noise or blanks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .sample import SyntheticSample

__all__ = ["Degradation", "corrupt_frames", "degrade", "to_uint16"]


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


def to_uint16(image: np.ndarray) -> np.ndarray:
    """Camera counts: intensity 1.0 maps to about 4000 counts on a 100-count baseline."""
    return np.clip(image * 4000.0 + 100.0, 0, 65535).astype(np.uint16)


def corrupt_frames(
    sample: SyntheticSample, seed: int, fraction: float = 0.25, burst: bool = False
) -> SyntheticSample:
    """Replace ``fraction`` of the frames by pure noise or a blank (constant) frame.

    The labels of corrupted frames are set to -1 (not scored): the object cannot be seen there;
    what matters is whether the frames after them are still right. ``burst`` corrupts one run
    of consecutive frames instead of scattered ones (a memory that keeps bad frames fills up
    with them).
    """
    rng = np.random.default_rng([seed, 7])
    frames = sample.image.shape[0]
    count = min(max(1, round(fraction * frames)), frames - 2)
    if burst:
        first = int(rng.integers(1, frames - count))
        picks = np.arange(first, first + count)
    else:
        picks = rng.choice(np.arange(1, frames - 1), size=count, replace=False)
    image = sample.image.copy()
    labels = sample.labels.copy()
    low, high = np.percentile(sample.image, (1, 99))
    for frame in picks:
        if rng.random() < 0.5:
            image[frame] = rng.uniform(low, high, image.shape[1:]).astype(image.dtype)
        else:
            image[frame] = np.asarray(low, image.dtype)
        labels[frame] = -1
    events = dict(sample.events)
    events["corrupted"] = sorted(int(p) for p in picks)
    return SyntheticSample(image, labels, sample.axis, sample.kind, events)


def _illumination_field(plane, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Smooth multiplicative illumination: a tilted plane times a broad Gaussian spot."""
    yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in plane], indexing="ij")
    cy, cx = rng.uniform(-0.5, 0.5, 2)
    spot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(0.5, 2.0))
    tilt = rng.uniform(-1, 1) * yy + rng.uniform(-1, 1) * xx
    field_ = 1.0 - amplitude + amplitude * (0.6 * spot + 0.2 * (tilt + 1))
    return field_.astype(np.float32)
