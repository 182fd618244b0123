"""Checks on what enters a label set: a frame, its labels and their object records; each
refusal names the value and what is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .format import MAX_LABEL_ID, ObjectRecord

LABEL_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32))


def check_image(image, what: str = "image") -> np.ndarray:
    """The frame as an array: 2-D (rows, cols) or 3-D (rows, cols, channels), of integers or
    floats, not empty, every value finite.

    Raises
    ------
    ValueError
        Naming the shape, dtype or first non-finite value that is refused.
    """
    if image is None:
        raise ValueError(f"{what} is missing (None)")
    array = np.asarray(image)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"{what} has shape {array.shape}: expected one frame, (rows, cols) or "
            "(rows, cols, channels)"
        )
    if array.size == 0:
        raise ValueError(f"{what} is empty (shape {array.shape})")
    if array.dtype.kind not in "uif":
        raise ValueError(
            f"{what} has dtype {array.dtype}: expected integers (uint8, uint16, int32, ...) or "
            "floats (float32, ...)"
        )
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            where = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(
                f"{what} has a non-finite value ({array[where]}) at {where}: every pixel must be "
                "a finite number"
            )
    return array


def check_labels(labels, frame_shape: Sequence[int], what: str = "labels") -> np.ndarray:
    """The labels as stored: ids 0..2**32-1, in the input's dtype when it is uint8, uint16 or
    uint32, otherwise the smallest of these that holds the largest id.

    Raises
    ------
    ValueError
        Shape not the frame's rows and columns, float or non-integer dtype, a negative id or
        one too large for uint32.
    """
    if labels is None:
        raise ValueError(f"{what} are missing (None)")
    array = np.asarray(labels)
    if array.shape != tuple(frame_shape):
        raise ValueError(
            f"{what} have shape {array.shape} but the image frame is {tuple(frame_shape)}: "
            "labels must have the image's rows and columns"
        )
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        raise ValueError(
            f"{what} have dtype {array.dtype}: label ids must be integers 0..{MAX_LABEL_ID} "
            "(convert whole-number floats first, e.g. labels.astype('uint16'))"
        )
    if array.dtype.kind not in "iu":
        raise ValueError(f"{what} have dtype {array.dtype}: label ids must be integers")
    lowest, highest = int(array.min()), int(array.max())
    if lowest < 0:
        raise ValueError(
            f"{what} hold a negative id ({lowest}): ids are 0 (background) or 1..{MAX_LABEL_ID}"
        )
    if highest > MAX_LABEL_ID:
        raise ValueError(
            f"{what} hold id {highest}, which does not fit uint32: ids are 1..{MAX_LABEL_ID}"
        )
    if array.dtype in LABEL_DTYPES:
        return array
    return array.astype(storage_dtype(highest))


def storage_dtype(highest_id: int) -> np.dtype:
    """The smallest label dtype that holds ``highest_id``."""
    for dtype in LABEL_DTYPES:
        if highest_id <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"label id {highest_id} does not fit uint32 (largest {MAX_LABEL_ID})")


def present_ids(labels: np.ndarray) -> list[int]:
    """The object ids present in ``labels`` (0, background, left out), ascending."""
    return [int(v) for v in np.unique(labels) if v != 0]


def check_objects(
    objects: Sequence[ObjectRecord | dict] | None, ids: Sequence[int]
) -> list[ObjectRecord]:
    """One record per id present in the labels, sorted by id.

    ``None`` gives every id the origin ``"imported"``. Otherwise the records must name
    exactly the ids present: an object with no pixels on a complete frame is *absent*, which
    the format says by leaving it out, never by an empty mask.
    """
    if objects is None:
        return [ObjectRecord(obj_id) for obj_id in ids]
    records = [o if isinstance(o, ObjectRecord) else ObjectRecord.from_json(o) for o in objects]
    named = [record.id for record in records]
    duplicates = sorted({i for i in named if named.count(i) > 1})
    if duplicates:
        raise ValueError(f"objects name ids {duplicates} more than once")
    missing = sorted(set(ids) - set(named))
    if missing:
        raise ValueError(f"labels hold ids {missing} that have no object record")
    empty = sorted(set(named) - set(ids))
    if empty:
        raise ValueError(
            f"objects {empty} have no pixels in the labels: leave absent objects out (on a "
            "complete frame an object not listed is absent)"
        )
    return sorted(records, key=lambda record: record.id)
