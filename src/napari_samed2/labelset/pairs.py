"""Folders of image/mask TIFF pairs (the cellpose, stardist and micro-sam layouts): find the
pairs and import each as a complete frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .importers import ImportReport
from .store import LabelSet

MASK_TAGS = ("_masks", "_mask", "_labels")  # cellpose writes _masks; the others are common
TIFF_SUFFIXES = (".tif", ".tiff")


def find_pairs(directory: str | os.PathLike) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Image/mask TIFF pairs in ``directory``, and the images that have no mask.

    Two layouts (cellpose, stardist and micro-sam train from them):

    - ``images/`` and ``masks/`` (or ``labels/``) folders holding files of the same names
      (stardist, micro-sam; what `export_pairs` writes), used when ``images/`` exists;
    - otherwise, side by side: ``NAME.tif`` with ``NAME_masks.tif`` (cellpose),
      ``NAME_mask.tif`` or ``NAME_labels.tif``. ``.tiff`` is accepted throughout.

    Raises
    ------
    FileNotFoundError
        The folder does not exist, or a mask has no image.
    ValueError
        No pairs at all, or two masks for one image.
    """
    directory = Path(directory)
    if not directory.is_dir():
        state = "is not a folder" if directory.exists() else "does not exist"
        raise FileNotFoundError(f"pairs folder {str(directory)!r} {state}")
    if (directory / "images").is_dir():
        images, masks = _subfolder_layout(directory)
    else:
        images, masks = _side_by_side_layout(directory)
    orphans = sorted(set(masks) - set(images))
    if orphans:
        mask = masks[orphans[0]]
        raise FileNotFoundError(
            f"mask {str(mask)!r} has no image: expected {orphans[0]!r} "
            f"({len(orphans)} masks without an image in all)"
        )
    pairs = [(images[key], masks[key]) for key in sorted(images) if key in masks]
    if not pairs:
        raise ValueError(
            f"no image/mask pairs in {str(directory)!r}: expected NAME.tif with NAME_masks.tif "
            "(or _mask, _labels) beside it, or images/ and masks/ (or labels/) folders "
            "holding files of the same names"
        )
    return pairs, [images[key] for key in sorted(images) if key not in masks]


def _tiffs(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.suffix.lower() in TIFF_SUFFIXES and p.is_file()
    )


def _subfolder_layout(directory: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    masks_dir = next((directory / n for n in ("masks", "labels") if (directory / n).is_dir()), None)
    if masks_dir is None:
        raise ValueError(f"{str(directory)!r} has images/ but no masks/ or labels/ folder")
    images = {str(directory / "images" / p.name): p for p in _tiffs(directory / "images")}
    masks = {str(directory / "images" / p.name): p for p in _tiffs(masks_dir)}
    return images, masks


def _side_by_side_layout(directory: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    images: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    for path in _tiffs(directory):
        stem = path.name[: -len(path.suffix)]
        tag = next((t for t in MASK_TAGS if stem.endswith(t)), None)
        found = images if tag is None else masks
        key = str(directory / stem[: len(stem) - len(tag or "")]) + ".tif"
        if key in found:
            raise ValueError(f"{str(found[key])!r} and {str(path)!r} pair with the same image")
        found[key] = path
    return images, masks


def import_pairs(labelset: LabelSet, directory: str | os.PathLike) -> ImportReport:
    """Import every image/mask TIFF pair of ``directory`` (layouts: `find_pairs`), each a
    complete frame, in any size and dtype. An image may be (Y, X), (Y, X, C) or (C, Y, X)
    (moved to channels last); its mask (Y, X) of integer ids."""
    pairs, unpaired = find_pairs(directory)
    report = ImportReport(skipped=[f"{p.name}: no mask" for p in unpaired])
    with labelset.writing():
        for image_path, mask_path in pairs:
            image, mask, channel_axis = _read_pair(image_path, mask_path)
            source = {
                "kind": "pairs",
                "name": image_path.name,
                "path": str(image_path.resolve()),
                "labels_path": str(mask_path.resolve()),
            }
            if channel_axis is not None:
                source["channel_axis"] = channel_axis
            try:
                entry = labelset.add(image, mask, complete=True, source=source)
            except ValueError as error:
                raise ValueError(f"{str(image_path)!r} with {str(mask_path)!r}: {error}") from None
            report.entries.append(entry.id)
            report.masks += len(entry.objects)
    return report


def _read_pair(image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray, int | None]:
    image, mask = _read(image_path), _read(mask_path)
    if mask.ndim != 2:
        raise ValueError(
            f"mask {str(mask_path)!r} has shape {mask.shape}: a pair is one 2-D frame (import "
            "stacks with --image and --labels)"
        )
    if image.shape == mask.shape or (image.ndim == 3 and image.shape[:2] == mask.shape):
        return image, mask, None
    if image.ndim == 3 and image.shape[1:] == mask.shape:
        return np.moveaxis(image, 0, -1), mask, 0
    raise ValueError(
        f"mask {str(mask_path)!r} has shape {mask.shape} but its image {str(image_path)!r} "
        f"has shape {image.shape}: a mask must have its image's rows and columns"
    )


def _read(path: Path) -> np.ndarray:
    import tifffile

    try:
        return tifffile.imread(path)
    except (OSError, ValueError, IndexError) as error:  # tifffile's errors are ValueErrors
        raise ValueError(f"cannot read {str(path)!r} as a TIFF image ({error})") from None
