"""Prompt checking and conversion: frame pixels (row, col) in, sam2's prompt tensors out.

Every bad prompt raises `PromptError` naming the bad value and what is accepted.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import PromptError

Region = tuple[int, int, int, int]  # (row0, col0, row1, col1)
MASK_LOGIT_CLAMP = 32.0  # sam2 clamps previous logits fed back with new clicks


def check_frame(frame, num_frames: int, name: str = "frame") -> int:
    """``frame`` as an int in ``[0, num_frames)``."""
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
        raise PromptError(f"{name} must be an integer frame index, got {frame!r}")
    if not 0 <= int(frame) < num_frames:
        raise PromptError(
            f"{name} {frame} is out of range; this stack has frames 0..{num_frames - 1}"
        )
    return int(frame)


MAX_OBJ_ID = 2**31 - 1  # label arrays are int32 (labelset.assemble_labels, the widget's layer)


def check_obj(obj_id) -> int:
    """``obj_id`` as an int label id in ``[1, MAX_OBJ_ID]``.

    0 is the background of a Labels layer; ids above ``MAX_OBJ_ID`` do not fit the int32
    label arrays the masks are written to. Integral floats (``3.0``, e.g. read back from a
    float layer) are taken as their integer; bools and other floats are refused.
    """
    if isinstance(obj_id, (float, np.floating)) and np.isfinite(obj_id):
        if float(obj_id).is_integer():
            obj_id = int(obj_id)
    if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (int, np.integer)):
        raise PromptError(
            f"obj_id must be an integer label id from 1 to {MAX_OBJ_ID}, got {obj_id!r}"
        )
    if not 1 <= int(obj_id) <= MAX_OBJ_ID:
        raise PromptError(
            f"obj_id {int(obj_id)} is out of range: label ids go from 1 to {MAX_OBJ_ID} "
            "(0 is the background of a Labels layer; larger ids do not fit its int32 labels)"
        )
    return int(obj_id)


def check_points(
    points, labels, frame_shape: tuple[int, int], region: Region
) -> tuple[np.ndarray, np.ndarray]:
    """Clicks as float64 ``(N, 2)`` (row, col) and int32 ``(N,)`` labels in {0, 1}.

    Points must lie in the frame and in the session's ``region``.
    """
    if points is None or labels is None:
        raise PromptError("points and labels must be given together")
    try:
        coords = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise PromptError(f"points must be numbers (row, col), got {points!r}") from error
    if coords.size == 0:
        raise PromptError(
            "no points were given (an empty array); give at least one (row, col) click"
        )
    if coords.ndim == 1 and coords.size == 2:
        coords = coords[None]
    label_array = np.asarray(labels).reshape(-1)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise PromptError(f"points must have shape (N, 2) as (row, col), got {coords.shape}")
    if len(label_array) != len(coords):
        raise PromptError(f"got {len(coords)} points but {len(label_array)} labels")
    if not np.all(np.isin(label_array, (0, 1))):
        raise PromptError(f"labels must be 1 (positive) or 0 (negative), got {label_array}")
    finite = np.isfinite(coords).all(axis=1)
    if not finite.all():
        raise PromptError(
            f"points must be finite numbers, got {coords[~finite].tolist()} (NaN or infinite)"
        )
    rows, cols = frame_shape
    outside = (coords[:, 0] < 0) | (coords[:, 1] < 0)
    outside |= (coords[:, 0] > rows) | (coords[:, 1] > cols)
    if outside.any():
        raise PromptError(
            f"points {coords[outside].tolist()} lie outside the frame of shape {(rows, cols)}; "
            f"accepted: 0 <= row <= {rows} and 0 <= col <= {cols}"
        )
    row0, col0, row1, col1 = region
    off = (coords[:, 0] < row0) | (coords[:, 0] > row1) | (coords[:, 1] < col0)
    off |= coords[:, 1] > col1
    if off.any():
        raise PromptError(
            f"points {coords[off].tolist()} lie outside the session's region {region}"
        )
    return coords, label_array.astype(np.int32)


def check_box(box, frame_shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """``box`` ``(row0, col0, row1, col1)`` clipped to the frame.

    A box partly outside the frame is clipped (a drag that overshoots the image edge); one
    with zero area, reversed corners, or nothing inside the frame is refused.
    """
    try:
        values = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise PromptError(
            f"box must be 4 finite numbers (row0, col0, row1, col1), got {box!r}"
        ) from error
    if values.shape != (4,) or not np.all(np.isfinite(values)):
        raise PromptError(
            f"box must be 4 finite numbers (row0, col0, row1, col1), got {values.tolist()}"
        )
    row0, col0, row1, col1 = (float(v) for v in values)
    if row1 == row0 or col1 == col0:
        raise PromptError(
            f"box {(row0, col0, row1, col1)} has zero area; a box needs row1 > row0 and col1 > col0"
        )
    if not (row1 > row0 and col1 > col0):
        raise PromptError(
            f"box {(row0, col0, row1, col1)} must have row1 > row0 and col1 > col0 "
            "(corners as (top, left, bottom, right))"
        )
    rows, cols = frame_shape
    clipped = (
        min(max(row0, 0.0), rows),
        min(max(col0, 0.0), cols),
        min(max(row1, 0.0), rows),
        min(max(col1, 0.0), cols),
    )
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise PromptError(
            f"box {(row0, col0, row1, col1)} lies outside the frame of shape {(rows, cols)}; "
            f"accepted: boxes that overlap 0 <= row <= {rows}, 0 <= col <= {cols}"
        )
    return clipped


def point_inputs(
    coords: np.ndarray, labels: np.ndarray, region: Region, image_size: int, device
) -> dict[str, torch.Tensor]:
    """sam2's ``point_inputs``: ``point_coords`` float32 ``(1, N, 2)`` as (x, y) in model
    pixels, ``point_labels`` int32 ``(1, N)`` (2/3 mark a box's corners).

    sam2 takes (x, y) = (col, row), normalised by the frame size, then scaled to the model's
    input size; the same tensor operations as its predictor keep this bit-exact.
    """
    row0, col0, row1, col1 = region
    local = coords - np.array([row0, col0])
    xy = torch.tensor(local[:, ::-1].copy(), dtype=torch.float32)[None]
    xy = xy / torch.tensor([col1 - col0, row1 - row0]) * image_size
    return {
        "point_coords": xy.to(device),
        "point_labels": torch.tensor(labels, dtype=torch.int32)[None].to(device),
    }


def box_clicks(box, region: Region, extra=None, extra_labels=None):
    """A box's corners clipped to ``region`` as sam2's box clicks (labels 2 and 3), then the
    clicks ``extra`` with ``extra_labels`` if given (frame coordinates, as `point_inputs`
    takes them)."""
    row0, col0, row1, col1 = box
    top, left, bottom, right = region
    coords = np.array(
        [
            [np.clip(row0, top, bottom), np.clip(col0, left, right)],
            [np.clip(row1, top, bottom), np.clip(col1, left, right)],
        ]
    )
    label_array = np.array([2, 3])
    if extra is not None:
        coords = np.concatenate([coords, extra])
        label_array = np.concatenate([label_array, extra_labels])
    return coords, label_array


def check_mask(mask, frame_shape: tuple[int, int]) -> np.ndarray:
    """``mask`` as a boolean ``frame_shape`` array (nonzero = object)."""
    array = np.asarray(mask)
    if array.shape != tuple(frame_shape):
        raise PromptError(
            f"mask shape {array.shape} does not match the frame shape {tuple(frame_shape)}"
        )
    if array.dtype.kind not in "biuf":
        raise PromptError(f"mask must be boolean or numeric, got dtype {array.dtype}")
    return array > 0


def mask_inputs(
    mask, frame_shape: tuple[int, int], region: Region, image_size: int, device
) -> torch.Tensor:
    """A user mask as sam2's mask prompt: float32 ``(1, 1, S, S)`` of 0/1, resized like
    sam2's ``add_new_mask`` (antialiased bilinear, then >= 0.5)."""
    inside_frame = check_mask(mask, frame_shape)
    row0, col0, row1, col1 = region
    inside = np.ascontiguousarray(inside_frame[row0:row1, col0:col1])
    tensor = torch.from_numpy(inside)[None, None].float()
    if tensor.shape[-2:] != (image_size, image_size):
        tensor = F.interpolate(
            tensor,
            size=(image_size, image_size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        tensor = (tensor >= 0.5).float()
    return tensor.to(device)
