"""Reading image stacks and writing label stacks for the command line (lazily, atomically)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_text_atomic

READABLE = (".tif", ".tiff", ".npy", ".zarr")


def read_stack(path: str | Path):
    """Open an image or stack without loading it whole where the format allows.

    TIFF files are opened through tifffile's zarr interface and ``.npy`` files memory-mapped;
    the engine then reads one frame at a time.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(f"input {str(path)!r} does not exist")
    if suffix not in READABLE:
        raise ValueError(f"cannot read {str(path)!r}: expected one of {', '.join(READABLE)}")
    if suffix == ".npy":
        return np.load(path, mmap_mode="r", allow_pickle=False)
    import zarr

    if suffix == ".zarr":
        return zarr.open(str(path), mode="r")
    import tifffile

    store = tifffile.imread(path, aszarr=True)
    return zarr.open(store, mode="r")


def write_labels(path: str | Path, labels: np.ndarray) -> None:
    """Write a label stack as ``.tif``/``.tiff`` (zlib) or ``.npy``, atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".tif", ".tiff", ".npy"):
        raise ValueError(f"cannot write labels to {str(path)!r}: use .tif, .tiff or .npy")
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, labels, allow_pickle=False)
        else:
            import tifffile

            tifffile.imwrite(tmp, labels, compression="zlib")


def write_confidence_csv(path: str | Path, rows) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["frame", "object", "confidence", "predicted_iou", "object_score", "in_memory"])
    for frame, obj_id, confidence, iou, score, in_memory in rows:
        writer.writerow(
            [frame, obj_id, f"{confidence:.4f}", f"{iou:.4f}", f"{score:.4f}", int(in_memory)]
        )
    write_text_atomic(path, buffer.getvalue())
