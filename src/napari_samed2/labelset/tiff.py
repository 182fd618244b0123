"""TIFF files of a label set: frames in their own dtype, BigTIFF when large, fsynced on write."""

from __future__ import annotations

import os

import numpy as np

from ..atomic import fsync_file

# Classic TIFF addresses 4 GiB; switch well before (headers, strips) and only when needed,
# since a few old readers (ImageJ 1.x before 1.52) cannot open BigTIFF.
BIGTIFF_BYTES = 2**31


def write_tiff(path: str | os.PathLike, array: np.ndarray, *, compress: bool = False) -> None:
    """Write one frame (rows, cols) or (rows, cols, channels) and flush it to disk.

    ``compress`` uses zlib (deflate), which every TIFF reader we know of opens; labels shrink
    tenfold with it, images little, so images are stored plain.
    """
    import tifffile

    array = np.ascontiguousarray(array)
    options = {"photometric": "minisblack"}
    if array.ndim == 3 and array.shape[2] > 1:
        # samples of one pixel side by side: read back as (rows, cols, channels); tifffile's
        # shape in the description restores a single trailing channel
        options["planarconfig"] = "contig"
    tifffile.imwrite(
        path,
        array,
        bigtiff=array.nbytes > BIGTIFF_BYTES,
        compression="zlib" if compress else None,
        **options,
    )
    fsync_file(path)


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)
