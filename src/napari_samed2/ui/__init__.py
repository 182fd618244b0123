"""napari widgets, prompt layers, workers and plots: the only Qt code of the package."""

from .samples import moving_cells_sample, nuclei_volume_sample, skimage_cell_sample
from .shortcuts import SHORTCUTS
from .widget import SAMed2Widget

__all__ = [
    "SHORTCUTS",
    "SAMed2Widget",
    "moving_cells_sample",
    "nuclei_volume_sample",
    "skimage_cell_sample",
]
