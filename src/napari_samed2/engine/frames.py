"""Lazy frames from napari-style arrays: axis handling, intensity scaling, model preprocessing.

A `FrameSource` reads one frame at a time from numpy, dask or zarr arrays (never the whole
stack), scales intensities robustly once per stack, and turns a frame into the model's input
tensor. For uint8 data it reproduces sam2's own video preprocessing exactly (PIL resize of the
RGB image, divide by 255, mean/std), so that ``memory="sam2"`` matches `SAM2VideoPredictor`.
Multiscale (pyramid) images are segmented on their full-resolution level.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import FrameDataError

logger = logging.getLogger(__name__)

SAMPLE_FRAMES = 16  # frames read to estimate the intensity percentiles
SAMPLE_PIXELS = 256 * 256  # pixels per sampled frame (strided), so estimation stays cheap


@dataclass(frozen=True)
class ModelInput:
    """How frames must be fed to a network: square size, mean/std (None: [0, 1] only)."""

    image_size: int
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None


class ConstantFrameWarning(UserWarning):
    """Frames without contrast (constant or all NaN): they are segmented as blank images.

    A `PropagationSession` gives it once, naming how many frames it met (`FrameSource` only
    records them in ``constant_frames``).
    """


def full_resolution(data):
    """The full-resolution level of a multiscale (pyramid) image; any other data as is.

    A pyramid is a list or tuple of arrays, largest first (a napari multiscale layer's
    ``data``, OME-Zarr's datasets), each level no larger than the one before on every axis
    and smaller on at least one. Only level 0's shape is read here, no pixels.

    Raises
    ------
    FrameDataError
        For a sequence that is not such a pyramid (e.g. a list of frames of one size).
    """
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        return data
    levels = list(data)
    accepted = (
        "accepted: an array (numpy, dask or zarr) or a multiscale pyramid, a list of arrays "
        "whose shapes shrink from the first (full resolution) to the last"
    )
    if not levels:
        raise FrameDataError(f"data is an empty {type(data).__name__}; {accepted}")
    for index, level in enumerate(levels):
        if not hasattr(level, "shape") or not hasattr(level, "__getitem__"):
            raise FrameDataError(
                f"data is a {type(data).__name__} whose item {index} is a "
                f"{type(level).__name__}, not an array; {accepted}"
            )
    shapes = [tuple(int(n) for n in level.shape) for level in levels]
    for index in range(1, len(shapes)):
        before, after = shapes[index - 1], shapes[index]
        shrinks = (
            len(after) == len(before)
            and all(a <= b for a, b in zip(after, before, strict=True))
            and after != before
        )
        if not shrinks:
            raise FrameDataError(
                f"data is a {type(data).__name__} of {len(shapes)} arrays with shapes "
                f"{shapes}, not a multiscale pyramid: level {index} {after} is not smaller "
                f"than level {index - 1} {before}; {accepted} (to segment a list of frames, "
                "np.stack them)"
            )
    if len(shapes) > 1:
        logger.info("multiscale image %s: segmenting level 0", shapes)
    return levels[0]


class FrameSource:
    """Frames of an array along one axis, read lazily.

    Parameters
    ----------
    data : array-like or sequence of array-like
        numpy, dask or zarr array; YX, YXC (C = 3 or 4), ZYX/TYX, TYXC, or 4-D/5-D stacks
        such as TZYX(C). The last two non-channel axes are rows and columns. A multiscale
        pyramid (list of arrays, largest first) is read from its full-resolution level
        (`full_resolution`), lazily like any array.
    axis : int
        Propagation axis, an index into ``data``'s axes (negative counts from the end). It must
        not be a row, column or channel axis. Ignored for a single 2-D image (one frame).
    rgb : bool, optional
        Whether the last axis holds colour channels; ``None`` guesses like napari does (last
        axis of length 3 or 4 in data with 3 or more axes).
    position : sequence of int, optional
        For 4-D/5-D data, the index along every other leading axis (as in napari's dims slider),
        one entry per axis of ``data`` (entries for the propagation, row, column and channel
        axes are ignored). Default: 0 on every other axis.
    percentiles : (float, float)
        Percentiles of the intensity scaling for non-uint8 data.
    region : (row0, col0, row1, col1), optional
        Only this part of every frame is read and shown to the model (a zoom for small
        objects: see `zoom_region`); ``frame_shape`` stays the full frame's shape.
    value_range : (float, float), optional
        The (low, high) intensities mapped to 0 and 1, instead of estimating them (a zoomed
        region scaled like the whole frames).
    """

    def __init__(
        self,
        data,
        axis: int = 0,
        *,
        rgb: bool | None = None,
        position: Sequence[int] | None = None,
        percentiles: tuple[float, float] = (0.5, 99.5),
        region: Sequence[int] | None = None,
        value_range: tuple[float, float] | None = None,
    ):
        data = full_resolution(data)
        shape = tuple(int(n) for n in getattr(data, "shape", ()))
        dtype = np.dtype(getattr(data, "dtype", np.float64))
        ndim = len(shape)
        if not hasattr(data, "__getitem__") or not hasattr(data, "shape"):
            raise FrameDataError(
                f"data must be an array (numpy, dask or zarr), got {type(data).__name__}"
            )
        if ndim < 2 or ndim > 5:
            raise FrameDataError(
                f"data must have 2 to 5 axes (YX, YXC, ZYX, TYXC, TZYX, TZYXC), got shape {shape}"
            )
        if dtype.kind == "c":
            raise FrameDataError(
                f"complex data ({dtype}) cannot be segmented; pass its magnitude (np.abs) or a "
                "real part"
            )
        if dtype.kind not in "biuf":
            raise FrameDataError(
                f"data dtype must be bool, integer or float, got {dtype} for shape {shape}"
            )
        if rgb is None:
            rgb = ndim >= 3 and shape[-1] in (3, 4)
        if rgb and (ndim < 3 or shape[-1] not in (3, 4)):
            raise FrameDataError(f"rgb=True needs a last axis of length 3 or 4, got shape {shape}")
        spatial_ndim = ndim - 1 if rgb else ndim
        if spatial_ndim > 4:
            raise FrameDataError(f"data has {spatial_ndim} non-channel axes (at most 4), {shape}")
        row_axis, col_axis = spatial_ndim - 2, spatial_ndim - 1
        if 0 in shape:
            raise FrameDataError(f"data has an empty axis: shape {shape}")

        self.data = data
        self.shape = shape
        self.dtype = dtype
        self.rgb = bool(rgb)
        self.frame_shape = (shape[row_axis], shape[col_axis])
        if spatial_ndim == 2:
            self.axis = None
            self.num_frames = 1
        else:
            if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
                raise FrameDataError(f"axis must be an integer, got {axis!r}")
            resolved = int(axis) + ndim if axis < 0 else int(axis)
            if not 0 <= resolved < ndim:
                raise FrameDataError(
                    f"axis {axis} is out of range for data with {ndim} axes (shape {shape})"
                )
            if resolved >= row_axis:
                kind = "channel" if resolved == ndim - 1 and rgb else "row/column"
                raise FrameDataError(
                    f"axis {axis} is a {kind} axis of data with shape {shape}; the propagation "
                    f"axis must be one of {list(range(row_axis))}"
                )
            self.axis = resolved
            self.num_frames = shape[resolved]
        leading = [0] * row_axis
        if position is not None:
            position = list(position)
            for index in range(row_axis):
                if index < len(position) and index != self.axis:
                    value = int(position[index])
                    if not 0 <= value < shape[index]:
                        raise FrameDataError(
                            f"position[{index}]={value} is out of range for axis {index} of "
                            f"length {shape[index]}"
                        )
                    leading[index] = value
        self._leading = leading
        self.region = _check_region(region, self.frame_shape)
        self._percentiles = percentiles
        self._range: tuple[float, float] | None = None
        if value_range is not None:
            low, high = (float(v) for v in value_range)
            if not (np.isfinite(low) and np.isfinite(high) and high >= low):
                raise FrameDataError(f"value_range must be finite (low, high), got {value_range}")
            self._range = (low, high)
        # frame -> why it has no contrast; filled as frames are read (by several threads when
        # prefetching: dict assignment is atomic, readers copy it)
        self._constant: dict[int, str] = {}
        self._hashes: dict[int, str] = {}  # frame -> content_hash (same threading rule)

    def __len__(self) -> int:
        return self.num_frames

    # -- reading ---------------------------------------------------------------------------

    def read(self, frame: int, *, whole: bool = False) -> np.ndarray:
        """The raw frame ``(rows, cols)`` or ``(rows, cols, C)`` in the data's dtype: its
        region, or (``whole``) all of it."""
        if not 0 <= frame < self.num_frames:
            raise IndexError(f"frame {frame} is out of range [0, {self.num_frames - 1}]")
        index: list = list(self._leading)
        if self.axis is not None:
            index[self.axis] = frame
        row0, col0, row1, col1 = (0, 0, *self.frame_shape) if whole else self.region
        index += [slice(row0, row1), slice(col0, col1)]
        return np.asarray(self.data[tuple(index)])

    @property
    def region_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the part of each frame the model sees."""
        row0, col0, row1, col1 = self.region
        return (row1 - row0, col1 - col0)

    def intensity_range(self) -> tuple[float, float]:
        """The (low, high) values mapped to 0 and 1, from percentiles over a strided sample.

        Computed once per source from at most `SAMPLE_FRAMES` frames, each subsampled to about
        `SAMPLE_PIXELS` pixels, ignoring NaN and infinities.
        """
        if self._range is None:
            picks = np.unique(np.linspace(0, self.num_frames - 1, SAMPLE_FRAMES).round())
            rows, cols = self.region_shape
            step = max(1, int(np.sqrt(rows * cols / SAMPLE_PIXELS)))
            samples = []
            for frame in picks.astype(int):
                values = self.read(int(frame))[::step, ::step].astype(np.float64, copy=False)
                samples.append(values[np.isfinite(values)])
            values = np.concatenate(samples) if samples else np.zeros(0)
            if values.size == 0:
                # frames are blank: each is noted as all NaN when read, and a session warns
                self._range = (0.0, 1.0)
            else:
                low, high = np.percentile(values, self._percentiles)
                if high <= low:  # (nearly) constant data: fall back to the full range
                    low, high = float(values.min()), float(values.max())
                self._range = (float(low), float(high))
        return self._range

    def scaled(self, frame: int) -> np.ndarray:
        """The frame as float32 in [0, 1], ``(rows, cols, 3)`` (grey replicated, alpha dropped).

        uint8 data is divided by 255 (sam2's convention); other data is mapped through
        `intensity_range`, clipped, with NaN set to 0.
        """
        raw = self.read(frame)
        if self.dtype == np.uint8:
            values = raw.astype(np.float32) / np.float32(255)
        else:
            low, high = self.intensity_range()
            span = high - low
            values = raw.astype(np.float64)
            if span > 0:
                values = (values - low) / span
            else:
                values = np.zeros_like(values)
            values = np.nan_to_num(np.clip(values, 0.0, 1.0), nan=0.0).astype(np.float32)
        self._note_if_constant(frame, raw)
        return _to_rgb(values)

    @property
    def constant_frames(self) -> dict[int, str]:
        """Frames read so far that have no contrast, to why: ``"all NaN"`` or
        ``"constant (value)"``. They are segmented as blank images."""
        return dict(sorted(dict(self._constant).items()))

    def _note_if_constant(self, frame: int, raw: np.ndarray) -> None:
        # recorded, not warned: a session warns once for all of them (a volume can have
        # hundreds of blank slices)
        finite = raw[np.isfinite(raw)] if raw.dtype.kind == "f" else raw
        if finite.size == 0 or finite.min() == finite.max():
            why = "all NaN" if finite.size == 0 else f"constant ({finite.flat[0]})"
            self._constant[frame] = why

    def content_hash(self, frame: int) -> str:
        """A digest of everything that makes ``frame``'s model input, before resizing.

        blake2b of the raw frame (its region) with its dtype and shape, and the scaling: the
        (low, high) `intensity_range` for non-uint8 data, ``/255`` for uint8. Remembered per
        frame (the data is not expected to change under a source, as for the feature cache).
        Reading the frame also notes it when it is blank, as `model_input` does.

        Returns
        -------
        str
            64 hexadecimal digits.
        """
        known = self._hashes.get(frame)
        if known is not None:
            return known
        raw = np.ascontiguousarray(self.read(frame))
        self._note_if_constant(frame, raw)
        scaling = "/255" if self.dtype == np.uint8 else repr(self.intensity_range())
        digest = hashlib.blake2b(digest_size=32)
        digest.update(f"{raw.dtype.str}|{raw.shape}|{self.rgb}|{scaling}|".encode())
        digest.update(raw.reshape(-1).view(np.uint8))
        self._hashes[frame] = digest.hexdigest()
        return self._hashes[frame]

    # -- model input -----------------------------------------------------------------------

    def model_input(self, frame: int, spec: ModelInput) -> torch.Tensor:
        """The frame as the network's input, float32 ``(3, S, S)``.

        uint8 frames follow sam2's ``load_video_frames`` exactly: PIL resize (bicubic) of the
        RGB image to S x S, then ``/ 255`` in float64 stored as float32, then mean/std. Other
        dtypes are scaled to [0, 1] first and resized with antialiased bilinear interpolation.
        """
        size = spec.image_size
        if self.dtype == np.uint8:
            raw = self.read(frame)
            self._note_if_constant(frame, raw)
            image = Image.fromarray(_to_rgb(raw)).resize((size, size))
            array = np.asarray(image) / 255.0
            tensor = torch.from_numpy(array).permute(2, 0, 1).float()
        else:
            scaled = torch.from_numpy(self.scaled(frame)).permute(2, 0, 1)[None]
            if scaled.shape[-2:] != (size, size):
                scaled = F.interpolate(
                    scaled, size=(size, size), mode="bilinear", align_corners=False, antialias=True
                )
            tensor = scaled[0].contiguous()
        if spec.mean is not None and spec.std is not None:
            mean = torch.tensor(spec.mean, dtype=torch.float32)[:, None, None]
            std = torch.tensor(spec.std, dtype=torch.float32)[:, None, None]
            tensor = (tensor - mean) / std
        return tensor


def _to_rgb(values: np.ndarray) -> np.ndarray:
    if values.ndim == 2:
        return np.repeat(values[:, :, None], 3, axis=2)
    return np.ascontiguousarray(values[:, :, :3])


def _check_region(region, frame_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    rows, cols = frame_shape
    if region is None:
        return (0, 0, rows, cols)
    values = tuple(region)
    if len(values) != 4 or not all(isinstance(v, (int, np.integer)) for v in values):
        raise FrameDataError(f"region must be 4 integers (row0, col0, row1, col1), got {region!r}")
    row0, col0, row1, col1 = (int(v) for v in values)
    if not (0 <= row0 < row1 <= rows and 0 <= col0 < col1 <= cols):
        raise FrameDataError(
            f"region {values} must satisfy 0 <= row0 < row1 <= {rows} and "
            f"0 <= col0 < col1 <= {cols} (the frame shape)"
        )
    return (row0, col0, row1, col1)


def zoom_region(
    points,
    frame_shape: tuple[int, int],
    *,
    context: float = 4.0,
    min_size: int = 64,
) -> tuple[int, int, int, int]:
    """A square region around prompts, so that a small object fills a useful part of the
    model's input.

    Parameters
    ----------
    points : array-like, shape (N, 2)
        ``(row, col)`` of the prompts (a box's two corners count as points).
    frame_shape : (int, int)
        ``(rows, cols)`` of the frame.
    context : float
        Side of the region as a multiple of the prompts' extent (at least ``min_size``).
    min_size : int
        Smallest side in pixels; a single click gives a ``min_size`` square.

    Returns
    -------
    (row0, col0, row1, col1)
        Inside the frame; pass it as ``region=`` to `PropagationSession`.

    Examples
    --------
    A click on a 12-px nucleus in a 2048-px frame gives a 64-px region: at a 1024-px model
    size the nucleus spans about 190 model pixels instead of 6.
    """
    coords = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    rows, cols = frame_shape
    low, high = coords.min(axis=0), coords.max(axis=0)
    side = max(float(min_size), context * float((high - low).max()))
    side = int(min(np.ceil(side), rows, cols))
    centre = (low + high) / 2
    row0 = int(np.clip(round(centre[0] - side / 2), 0, rows - side))
    col0 = int(np.clip(round(centre[1] - side / 2), 0, cols - side))
    return (row0, col0, row0 + side, col0 + side)


ZOOM_CONTEXT = 4.0  # a mask prompt's region side as a multiple of the mask's extent
ZOOM_MIN_SIZE = 64  # pixels: the smallest region tried around a click


def zoom_scales(
    anchor, view: Sequence[int], *, min_size: int = ZOOM_MIN_SIZE
) -> list[tuple[int, int, int, int]]:
    """Squares around ``anchor`` of ``min_size``, twice that, ... and finally ``view`` itself.

    Each square is at least 4x the anchor's extent (`zoom_region`) and lies inside ``view``
    (the session's region); squares as large as ``view``'s shorter side are replaced by
    ``view``; no region is listed twice.
    """
    row0, col0, row1, col1 = view
    shorter = min(row1 - row0, col1 - col0)
    local = np.asarray(anchor, np.float64).reshape(-1, 2) - [row0, col0]
    regions = []
    side = min_size
    while side < shorter:
        top, left, bottom, right = zoom_region(local, (row1 - row0, col1 - col0), min_size=side)
        square = (top + row0, left + col0, bottom + row0, right + col0)
        if not regions or square != regions[-1]:  # a box's extent can make the first ones equal
            regions.append(square)
        side *= 2
    whole = tuple(int(v) for v in view)
    if not regions or regions[-1] != whole:
        regions.append(whole)
    return regions
