"""Synthetic microscopy and MRI/CT-like images with ground-truth instance labels.

Every generator is seeded (same seed, same sample), fast, and returns a `SyntheticSample`:
an image that looks like what an instrument records (blur, uneven illumination, intensity
drift, Poisson and Gaussian noise) and the instance labels of the clean scene it was made from.
The package needs only numpy and scipy (napari's sample data imports it without torch):
`scenes` makes 2-D images, `volumes` ``(Z, Y, X)`` stacks, `timelapse` ``(T, Y, X)`` movies,
and `degradation` turns a clean scene into a recorded one. `tissue` and `brain` make stacks
that look like real ones (dense nuclei under a long axial blur; T1 brain MRI with folded
tissue classes), the "real-like" evaluation suite.
"""

from .brain import BRAIN_CLASSES, brain_volume
from .degradation import Degradation, corrupt_frames, degrade
from .sample import SyntheticSample
from .scenes import cells_image, nuclei_image, organ_image, tubes_image
from .timelapse import moving_cells_timelapse
from .tissue import tissue_volume
from .volumes import nuclei_volume, organ_volume

__all__ = [
    "BRAIN_CLASSES",
    "GENERATORS",
    "Degradation",
    "SyntheticSample",
    "brain_volume",
    "cells_image",
    "corrupt_frames",
    "degrade",
    "moving_cells_timelapse",
    "nuclei_image",
    "nuclei_volume",
    "organ_image",
    "organ_volume",
    "tissue_volume",
    "tubes_image",
]

#: Every generator by the name the training mix, the evaluation and the CLI use.
GENERATORS = {
    "nuclei": nuclei_image,
    "cells": cells_image,
    "tubes": tubes_image,
    "organs": organ_image,
    "nuclei-volume": nuclei_volume,
    "organ-volume": organ_volume,
    "tissue-volume": tissue_volume,
    "brain-volume": brain_volume,
    "timelapse": moving_cells_timelapse,
}
