"""``(Z, Y, X)`` stacks that look like T1-weighted brain MRI: large tissue classes with folded
boundaries next to compact structures.

What makes brain MRI hard for a model trained on blobs: white matter and the cortical ribbon of
grey matter are large, meet along a folded boundary (gyri push white matter into the grey
matter), and differ only moderately in intensity; the two hemispheres touch at the midline;
the ventricles and deep grey nuclei are compact objects inside the white matter. Slices are
thicker than pixels (the z axis is sampled 2-5x more coarsely), so partial volumes smear the
boundaries along z, and the scanner adds a smooth bias field, Rician-like noise and an offset.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .sample import SyntheticSample, check_shape

__all__ = ["BRAIN_CLASSES", "brain_volume"]

#: Label id -> structure. Odd/even pairs are left/right.
BRAIN_CLASSES = {
    1: "left white matter",
    2: "right white matter",
    3: "left grey matter (cortex)",
    4: "right grey matter (cortex)",
    5: "left lateral ventricle",
    6: "right lateral ventricle",
    7: "left deep grey nucleus",
    8: "right deep grey nucleus",
}
# T1 contrast: white matter brightest, then deep grey, cortex, fluid darkest.
_T1 = {"wm": 1.0, "deep": 0.78, "gm": 0.66, "csf": 0.18, "scalp": 0.55}


def brain_volume(
    shape: tuple[int, int, int] = (24, 128, 128),
    seed: int = 0,
    z_step: float | None = None,
    folds: float = 1.0,
    offset: int = 800,
    signal: float = 400.0,
    noise: float = 0.035,
) -> SyntheticSample:
    """A T1-like brain volume with folded white/grey matter boundaries.

    Parameters
    ----------
    shape : (int, int, int)
        ``(Z, Y, X)``.
    seed : int
        Seed.
    z_step : float, optional
        Slice spacing in pixels (2-5 drawn at random by default): each slice averages that
        thickness of tissue.
    folds : float
        Depth of the gyral folding (0: smooth boundaries).
    offset, signal : int, float
        Scanner baseline and the counts of white matter above it (a low dynamic range).
    noise : float
        Noise standard deviation relative to white matter.

    Returns
    -------
    SyntheticSample
        uint16 image, int32 labels (`BRAIN_CLASSES`), kind ``"brain-volume"``.
    """
    slices, rows, cols = check_shape(shape, 3, "shape")
    rng = np.random.default_rng(seed)
    step = float(rng.uniform(2.0, 5.0)) if z_step is None else float(z_step)
    if step <= 0:
        raise ValueError(f"z_step must be > 0, got {z_step}")
    sub = 3  # sub-slices per slice: each slice integrates its thickness (partial volumes)
    half = np.array([0.5 * slices * step * rng.uniform(0.9, 1.5), 0.45 * rows, 0.42 * cols])
    half *= rng.uniform(0.85, 1.0)
    z = (np.arange(slices * sub) + 0.5) / sub * step - 0.5 * slices * step
    z += rng.uniform(-0.3, 0.3) * half[0]  # the stack does not sit on the brain's centre
    zz, yy, xx = np.meshgrid(
        z, np.arange(rows) - rows / 2 + 0.5, np.arange(cols) - cols / 2 + 0.5, indexing="ij"
    )
    radius = np.sqrt((zz / half[0]) ** 2 + (yy / half[1]) ** 2 + (xx / half[2]) ** 2)
    # sulci: thin winding sheets of fluid (a level set of a smooth random field) cut in from
    # the surface; white matter reaches out into each gyrus, away from the sulci around it
    field = ndi.gaussian_filter(rng.standard_normal(zz.shape), (3.0 * sub / step, 5.0, 5.0))
    field /= field.std() + 1e-12
    depth = rng.uniform(0.72, 0.82) * folds  # of the sulci, as a fraction of the radius
    sulcus = (np.abs(field) < 0.12) & (radius > 1.0 - 0.4 * depth) & (radius < 1.0)
    brain = radius < 1.0
    from_sulcus = ndi.distance_transform_edt(~sulcus, sampling=(step / sub, 1.0, 1.0))
    reach = np.clip(from_sulcus / (0.04 * rows), 0.0, 1.0)  # 0 at a sulcus, 1 mid-gyrus
    white = radius < 0.74 - 0.14 * depth + 0.3 * depth * reach
    gap = np.abs(xx) < 1.0 + 0.5 * rng.random()  # the interhemispheric fissure
    left = xx < 0
    labels = np.zeros(zz.shape, np.int32)
    grey = brain & ~white & ~sulcus & ~gap
    labels[grey] = np.where(left[grey], 3, 4)
    white &= ~gap
    labels[white] = np.where(left[white], 1, 2)
    tissue = np.full(zz.shape, _T1["csf"], np.float32)
    tissue[~brain] = 0.0
    scalp = (radius >= 1.06) & (radius < 1.16)
    tissue[scalp] = _T1["scalp"]
    tissue[grey] = _T1["gm"]
    tissue[white] = _T1["wm"]
    for side, sign in ((0, -1), (1, 1)):
        centre = np.array([rng.uniform(-0.1, 0.15), rng.uniform(-0.15, 0.05), sign * 0.14])
        for label, size, value in (
            (5 + side, np.array([0.32, 0.26, 0.07]) * rng.uniform(0.8, 1.2, 3), _T1["csf"]),
            (7 + side, np.array([0.16, 0.12, 0.10]) * rng.uniform(0.8, 1.2, 3), _T1["deep"]),
        ):
            where = centre + (np.array([-0.05, 0.22, 0.12 * sign]) if label >= 7 else 0)
            inside = (
                ((zz / half[0] - where[0]) / size[0]) ** 2
                + ((yy / half[1] - where[1]) / size[1]) ** 2
                + ((xx / half[2] - where[2]) / size[2]) ** 2
            ) < 1.0
            inside &= white | (labels == label)
            labels[inside] = label
            tissue[inside] = value
    # each slice averages its sub-slices; its label is the majority class of its centre
    image = tissue.reshape(slices, sub, rows, cols).mean(1)
    labels = labels.reshape(slices, sub, rows, cols)[:, sub // 2]
    image = ndi.gaussian_filter(image, (0.4, 0.7, 0.7))
    bias = np.exp(0.15 * ndi.gaussian_filter(rng.standard_normal(image.shape), (4, 24, 24)) * 8)
    image = image * bias
    real = image + rng.normal(0.0, noise, image.shape)
    imaginary = rng.normal(0.0, noise, image.shape)
    magnitude = np.hypot(real, imaginary)  # Rician: the noise floor is not zero
    counts = offset + signal * magnitude
    return SyntheticSample(
        np.clip(np.round(counts), 0, 65535).astype(np.uint16), labels, 0, "brain-volume"
    )
