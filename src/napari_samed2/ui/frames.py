"""Which axis of an image layer is the frame axis, and how frames map back to layer indices.

Pure numpy: the widget asks `infer_frame_axis` for a default, lets the user change it, and uses
`FrameGeometry` to cut the engine's 3-D stack out of the layer and to index the Labels layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import dask.array as da
import numpy as np

from ..engine.frames import full_resolution

TIME_NAMES = ("t", "time", "frame", "frames")
DEPTH_NAMES = ("z", "depth", "slice", "plane")


class FrameAxisError(ValueError):
    """The frame axis asked for does not fit the image."""


@dataclass(frozen=True)
class AxisInference:
    """What the layer's shape says about its frame axis.

    Attributes
    ----------
    candidates : tuple of int
        Non-spatial, non-channel axes that could be the frame axis (empty for a 2-D image).
    default : int or None
        The axis to use without asking, or None when the user must choose (4-D) or there is
        no frame axis (2-D).
    kind : str
        ``"2d"``, ``"Z"`` (volume), ``"T"`` (time-lapse) or ``"ask"`` (4-D and more).
    """

    candidates: tuple[int, ...]
    default: int | None
    kind: str

    @property
    def needs_choice(self) -> bool:
        return self.kind == "ask"


def spatial_ndim(shape: Sequence[int], rgb: bool) -> int:
    """Number of non-channel dimensions of an image layer's data."""
    return len(shape) - (1 if rgb else 0)


def infer_frame_axis(
    shape: Sequence[int], rgb: bool = False, axis_labels: Sequence[str] = ()
) -> AxisInference:
    """Guess the propagation axis of an image layer.

    Parameters
    ----------
    shape : sequence of int
        The layer's data shape (channels last for RGB).
    rgb : bool
        Whether the last axis holds colour channels.
    axis_labels : sequence of str
        The viewer's axis labels for the layer's dimensions (``"t"``, ``"z"``, ...); used to
        name the axis T or Z.

    Returns
    -------
    AxisInference
        2-D images have no frame axis; 3-D stacks use axis 0; 4-D data asks the user.
    """
    ndim = spatial_ndim(shape, rgb)
    if ndim < 2:
        raise FrameAxisError(f"an image needs at least 2 spatial dimensions, got shape {shape}")
    candidates = tuple(range(ndim - 2))
    if not candidates:
        return AxisInference((), None, "2d")
    if len(candidates) > 1:
        return AxisInference(candidates, None, "ask")
    return AxisInference(candidates, 0, axis_kind(axis_labels, 0))


def axis_kind(axis_labels: Sequence[str], axis: int) -> str:
    """``"T"`` when the axis label says time, otherwise ``"Z"``."""
    labels = [str(label).lower() for label in axis_labels]
    if axis < len(labels) and labels[axis] in TIME_NAMES:
        return "T"
    return "Z"


@dataclass(frozen=True)
class FrameGeometry:
    """How one image layer is cut into frames.

    Attributes
    ----------
    ndim : int
        Non-channel dimensions of the image layer (the Labels layer has exactly these).
    frame_axis : int or None
        Layer axis walked by propagation; None for a single 2-D image.
    fixed : dict of int to int
        For 4-D and more: the index held fixed on each other non-spatial axis.
    """

    ndim: int
    frame_axis: int | None
    fixed: dict[int, int] = field(default_factory=dict)

    @classmethod
    def for_layer(
        cls,
        shape: Sequence[int],
        rgb: bool,
        frame_axis: int | None,
        position: Sequence[float] = (),
    ) -> FrameGeometry:
        """Geometry for a layer, holding other leading axes at the viewer's ``position``."""
        ndim = spatial_ndim(shape, rgb)
        leading = range(ndim - 2)
        if frame_axis is None and ndim > 2:
            raise FrameAxisError(
                f"a {ndim}-D image needs a frame axis; choose one of {list(leading)}"
            )
        if frame_axis is not None and frame_axis not in leading:
            raise FrameAxisError(
                f"frame axis {frame_axis} is not a leading axis of a {ndim}-D image; "
                f"accepted: {list(leading)}"
            )
        fixed = {}
        for axis in leading:
            if axis != frame_axis:
                index = int(np.rint(position[axis])) if axis < len(position) else 0
                fixed[axis] = int(np.clip(index, 0, shape[axis] - 1))
        return cls(ndim=ndim, frame_axis=frame_axis, fixed=fixed)

    def stack(self, data):
        """The frames the engine sees: ``(F, Y, X)`` or ``(F, Y, X, C)`` (F = 1 for 2-D).

        ``data`` is an image layer's data: an array (numpy, dask, zarr) or, for a multiscale
        layer (``layer.multiscale``), its levels, of which the full-resolution one (level 0)
        is used. Nothing is read here: data other than numpy is cut as a dask array, which
        the engine reads one frame at a time.
        """
        data = full_resolution(data)
        if not isinstance(data, (np.ndarray, da.Array)):
            # zarr and other lazy arrays: indexing them directly would read the cut at once
            data = da.from_array(data, chunks=_native_chunks(data))
        index = tuple(self.fixed.get(axis, slice(None)) for axis in range(self.ndim - 2))
        cut = data[index] if index else data
        if self.frame_axis is None:
            return cut[None]
        # after removing the fixed axes, the frame axis is the only leading one left
        return cut

    def frame_index(self, frame: int) -> tuple:
        """Index into the layer (and its Labels layer) selecting one 2-D frame."""
        index: list = [slice(None)] * self.ndim
        for axis, value in self.fixed.items():
            index[axis] = value
        if self.frame_axis is not None:
            index[self.frame_axis] = int(frame)
        return tuple(index)

    def frame_at(self, position: Sequence[float]) -> int:
        """The frame the viewer shows at ``position`` (0 for a 2-D image)."""
        if self.frame_axis is None:
            return 0
        return int(np.rint(position[self.frame_axis]))

    def contains(self, coords: Sequence[float]) -> bool:
        """Whether layer ``coords`` (ndim long) lie in this geometry's fixed slice."""
        return all(int(np.rint(coords[axis])) == value for axis, value in self.fixed.items())

    def full_indices(self, frame: int, rows: np.ndarray, cols: np.ndarray) -> tuple:
        """Fancy indices into the Labels layer for pixels ``(rows, cols)`` of ``frame``."""
        indices = []
        for axis in range(self.ndim - 2):
            if axis == self.frame_axis:
                value = int(frame)
            else:
                value = self.fixed[axis]
            indices.append(np.full(rows.shape, value, dtype=np.intp))
        return (*indices, rows.astype(np.intp), cols.astype(np.intp))


def _native_chunks(data) -> tuple[int, ...] | str:
    """The array's own chunk shape (a frame read touches only its chunks), else dask's
    "auto"."""
    try:
        chunks = tuple(int(n) for n in data.chunks)
    except (AttributeError, TypeError, ValueError, NotImplementedError):
        return "auto"
    return chunks if len(chunks) == len(data.shape) else "auto"
