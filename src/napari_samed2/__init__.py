"""napari-samed2: SAMed-2 and SAM2 segmentation and propagation in napari."""

__version__ = "0.1.0"
