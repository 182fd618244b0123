"""napari-samed2: SAMed-2 and SAM2 segmentation and propagation in napari."""

import logging

__version__ = "0.1.0"

# Library code only logs; applications (the `samed2` command, napari) decide where it goes.
logging.getLogger(__name__).addHandler(logging.NullHandler())
