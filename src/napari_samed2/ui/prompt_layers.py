"""The prompt layers the widget creates: a Points layer for +/- clicks and a Shapes layer for boxes.

Each point carries features ``sign`` ("positive"/"negative", shown as green/red) and
``object`` (the label id it prompts); each rectangle carries ``object``. Reading prompts back
for one frame and object is plain numpy on the layers' data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from napari.layers import Image, Points, Shapes

from .frames import FrameGeometry

POSITIVE, NEGATIVE = "positive", "negative"
SIGN_COLOURS = {POSITIVE: "#39d353", NEGATIVE: "#ff4d4d"}


@dataclass
class FramePrompts:
    """The prompts of one object on one frame, in frame pixel coordinates.

    Attributes
    ----------
    points : ndarray of float, shape (N, 2)
        (row, col) of each click.
    labels : ndarray of int, shape (N,)
        1 for positive clicks, 0 for negative ones.
    box : tuple of 4 float or None
        (row0, col0, row1, col1) of the object's last rectangle on the frame.
    """

    points: np.ndarray
    labels: np.ndarray
    box: tuple[float, float, float, float] | None

    @property
    def empty(self) -> bool:
        return len(self.points) == 0 and self.box is None


def make_points_layer(image: Image, ndim: int, obj_id: int) -> Points:
    """An empty Points layer for ``image``'s prompts, in add mode, positive by default."""
    layer = Points(
        np.empty((0, ndim)),
        ndim=ndim,
        name=f"{image.name} points",
        features={
            "sign": np.array([], dtype=object),
            "object": np.array([], dtype=int),
        },
        feature_defaults={"sign": POSITIVE, "object": obj_id},
        face_color="sign",
        face_color_cycle=SIGN_COLOURS,
        border_color="white",
        border_width=0.15,
        size=max(3.0, min(image.data.shape[-2:]) / 40.0),
        scale=image.scale[:ndim],
        translate=image.translate[:ndim],
    )
    return layer


def make_boxes_layer(image: Image, ndim: int, obj_id: int) -> Shapes:
    """An empty Shapes layer for ``image``'s box prompts, in rectangle mode."""
    layer = Shapes(
        ndim=ndim,
        name=f"{image.name} boxes",
        features={"object": np.array([], dtype=int)},
        feature_defaults={"object": obj_id},
        edge_color="#ffd33d",
        face_color="transparent",
        edge_width=max(1.0, min(image.data.shape[-2:]) / 150.0),
        scale=image.scale[:ndim],
        translate=image.translate[:ndim],
    )
    return layer


def set_prompt_object(points: Points | None, boxes: Shapes | None, obj_id: int) -> None:
    """New points and boxes will prompt object ``obj_id``."""
    if points is not None:
        points.feature_defaults["object"] = obj_id
    if boxes is not None:
        boxes.feature_defaults["object"] = obj_id


def current_sign(points: Points) -> str:
    return str(points.feature_defaults["sign"].iloc[0])


def set_sign(points: Points, sign: str) -> None:
    """Sign of the next points; in select mode, the selected points change sign too.

    (In add mode napari keeps the point just placed selected; flipping it would surprise.)
    """
    if sign not in SIGN_COLOURS:
        raise ValueError(f"sign must be one of {sorted(SIGN_COLOURS)}, got {sign!r}")
    points.feature_defaults["sign"] = sign
    selected = sorted(points.selected_data) if str(points.mode) == "select" else []
    if selected:
        features = points.features.copy()
        features.loc[selected, "sign"] = sign
        points.features = features
        points.refresh_colors()


def toggle_sign(points: Points) -> str:
    """Switch the sign of the next points (and the selected ones); returns the new sign."""
    sign = NEGATIVE if current_sign(points) == POSITIVE else POSITIVE
    set_sign(points, sign)
    return sign


def prompts_for(
    points: Points | None, boxes: Shapes | None, geometry: FrameGeometry, frame: int, obj_id: int
) -> FramePrompts:
    """The clicks and box of object ``obj_id`` on ``frame``."""
    coords = np.empty((0, 2))
    labels = np.empty((0,), dtype=int)
    if points is not None and len(points.data):
        data = np.asarray(points.data)
        keep = np.asarray(points.features["object"].to_numpy() == obj_id)
        keep &= _on_frame(data, geometry, frame)
        coords = data[keep][:, -2:].astype(float)
        labels = (points.features["sign"].to_numpy()[keep] == POSITIVE).astype(int)
    box = None
    if boxes is not None and len(boxes.data):
        objects = boxes.features["object"].to_numpy()
        for vertices, shape_type, owner in zip(boxes.data, boxes.shape_type, objects, strict=True):
            vertices = np.asarray(vertices)
            if int(owner) != obj_id or shape_type not in ("rectangle", "polygon"):
                continue
            if not _on_frame(vertices, geometry, frame).all():
                continue
            rows, cols = vertices[:, -2], vertices[:, -1]
            box = (float(rows.min()), float(cols.min()), float(rows.max()), float(cols.max()))
    return FramePrompts(coords, labels, box)


def remove_object_prompts(points: Points | None, boxes: Shapes | None, obj_id: int) -> None:
    """Delete every point and box of ``obj_id``."""
    if points is not None and len(points.data):
        doomed = set(np.flatnonzero(points.features["object"].to_numpy() == obj_id).tolist())
        if doomed:
            points.selected_data = doomed
            points.remove_selected()
    if boxes is not None and len(boxes.data):
        doomed = set(np.flatnonzero(boxes.features["object"].to_numpy() == obj_id).tolist())
        if doomed:
            boxes.selected_data = doomed
            boxes.remove_selected()


def _on_frame(coords: np.ndarray, geometry: FrameGeometry, frame: int) -> np.ndarray:
    """Which rows of ``coords`` (layer coordinates) lie on ``frame`` of ``geometry``."""
    rounded = np.round(coords).astype(int)
    keep = np.ones(len(coords), dtype=bool)
    for axis, value in geometry.fixed.items():
        keep &= rounded[:, axis] == value
    if geometry.frame_axis is not None:
        keep &= rounded[:, geometry.frame_axis] == frame
    return keep
