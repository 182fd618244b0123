"""Reading image stacks and writing label stacks for the command line (lazily, atomically)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_text_atomic

READABLE = (".tif", ".tiff", ".npy", ".zarr")
LABEL_SUFFIXES = (".tif", ".tiff", ".npy")


class OutputPathError(FileExistsError):
    """An output path that would overwrite an input, another output, or (unasked) a file."""


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
    check_labels_suffix(path)
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, labels, allow_pickle=False)
        else:
            import tifffile

            tifffile.imwrite(tmp, labels, compression="zlib")


def check_labels_suffix(path: str | Path) -> None:
    """Raise ValueError unless ``path`` names a format `write_labels` writes."""
    if Path(path).suffix.lower() not in LABEL_SUFFIXES:
        raise ValueError(f"cannot write labels to {str(path)!r}: use {', '.join(LABEL_SUFFIXES)}")


def check_output_paths(
    outputs: Mapping[str, str | Path],
    inputs: Iterable[str | Path],
    force: bool = False,
) -> None:
    """Refuse outputs that would destroy data, before any work starts.

    Parameters
    ----------
    outputs : mapping
        What each output is called for the user (e.g. ``"--out"``) -> its path.
    inputs : iterable of path
        Files the run reads; an output may never be one of them, whatever path (link,
        relative or absolute) names it. Paths that do not exist are skipped.
    force : bool
        Allow replacing existing files that are not inputs.

    Raises
    ------
    OutputPathError
        An output is an input, two outputs are the same file, an output is a folder, or an
        output exists and ``force`` is False.
    """
    existing_inputs = [Path(p) for p in inputs if os.path.exists(p)]
    seen: dict[str, Path] = {}
    for option, raw in outputs.items():
        path = Path(raw)
        for other_option, other in seen.items():
            if os.path.abspath(path) == os.path.abspath(other) or _same_file(path, other):
                raise OutputPathError(
                    f"{option} {str(path)!r} is the same file as {other_option}; give each "
                    "output its own path"
                )
        seen[option] = path
        if not os.path.lexists(path):
            continue
        if path.is_dir():
            raise OutputPathError(f"{option} {str(path)!r} is a folder; give a file path")
        for source in existing_inputs:
            if _same_file(path, source):
                raise OutputPathError(
                    f"{option} {str(path)!r} is the input {str(source)!r}; writing there would "
                    "destroy it. Choose another output path"
                )
        if not force:
            raise OutputPathError(
                f"{option} {str(path)!r} already exists; pass --force to replace it, or "
                "choose another path"
            )


def _same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (a dangling link included)
        return False


def write_confidence_csv(path: str | Path, rows) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["frame", "object", "confidence", "predicted_iou", "object_score", "in_memory"])
    for frame, obj_id, confidence, iou, score, in_memory in rows:
        writer.writerow(
            [frame, obj_id, f"{confidence:.4f}", f"{iou:.4f}", f"{score:.4f}", int(in_memory)]
        )
    write_text_atomic(path, buffer.getvalue())
