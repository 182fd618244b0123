"""napari widgets, prompt layers, workers and plots: the only Qt code of the package.

Names load on first use (`lazy_loader`), so napari's sample-data menu does not import the
widget (and torch) to make a sample.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "samples": ["moving_cells_sample", "nuclei_volume_sample", "skimage_cell_sample"],
        "shortcuts": ["SHORTCUTS"],
        "widget": ["SAMed2Widget"],
    },
)
