"""FrameSource: axes, dtypes, intensity scaling, sam2's preprocessing, and clear errors."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from napari_samed2.engine import (
    ConstantFrameWarning,
    FrameDataError,
    FrameSource,
    ModelInput,
    PropagationSession,
)
from napari_samed2.model.registry import IMAGENET_MEAN, IMAGENET_STD

SAM2_INPUT = ModelInput(256, IMAGENET_MEAN, IMAGENET_STD)


@pytest.mark.parametrize(
    ("shape", "axis", "rgb", "frames", "frame_shape"),
    [
        ((30, 40), 0, None, 1, (30, 40)),
        ((30, 40, 3), 0, None, 1, (30, 40)),
        ((5, 30, 40), 0, None, 5, (30, 40)),
        ((5, 30, 40, 4), 0, None, 5, (30, 40)),
        ((2, 6, 30, 40), 1, None, 6, (30, 40)),
        ((2, 6, 30, 40, 3), 0, None, 2, (30, 40)),
        ((2, 6, 30, 3), 0, False, 2, (30, 3)),  # last axis of 3 that is not colour
    ],
)
def test_layouts(shape, axis, rgb, frames, frame_shape):
    source = FrameSource(np.zeros(shape, np.uint8), axis, rgb=rgb)
    assert (source.num_frames, source.frame_shape) == (frames, frame_shape)
    assert source.scaled(0).shape == (*frame_shape, 3)


@pytest.mark.parametrize(
    ("data", "axis", "message"),
    [
        (np.zeros(5), 0, "2 to 5 axes"),
        (np.zeros((1, 1, 1, 1, 1, 1)), 0, "2 to 5 axes"),
        (np.zeros((0, 30, 40)), 0, "empty axis"),
        (np.zeros((4, 30, 40), np.complex64), 0, "complex"),
        (np.zeros((4, 30, 40), "U1"), 0, "dtype"),
        (np.zeros((4, 30, 40)), 3, "out of range"),
        (np.zeros((4, 30, 40)), -4, "out of range"),
        (np.zeros((4, 30, 40)), 1, "row/column"),
        (np.zeros((4, 30, 40, 3)), 3, "channel"),
        (np.zeros((4, 30, 40)), 1.5, "integer"),
        ([[1, 2], [3, 4]], 0, "array"),
    ],
)
def test_bad_data_gives_a_clear_error(data, axis, message):
    with pytest.raises(FrameDataError, match=message):
        FrameSource(data, axis)


def test_uint8_preprocessing_equals_sam2s_loader(tmp_path):
    """For uint8 input our model input is sam2's load_video_frames output, bit for bit."""
    from sam2.utils.misc import load_video_frames

    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    for index, frame in enumerate(video):
        Image.fromarray(frame).save(tmp_path / f"{index}.png")
    # sam2 reads JPEG folders only; PNG is lossless, so write JPEG from the decoded PNG pixels
    for index in range(2):
        Image.open(tmp_path / f"{index}.png").save(tmp_path / f"{index}.jpg")
    decoded = np.stack([np.array(Image.open(tmp_path / f"{i}.jpg")) for i in range(2)])
    images, height, width = load_video_frames(
        str(tmp_path), 256, offload_video_to_cpu=True, compute_device=torch.device("cpu")
    )
    source = FrameSource(decoded, 0)
    assert (height, width) == source.frame_shape
    for index in range(2):
        assert torch.equal(source.model_input(index, SAM2_INPUT), images[index])


def test_robust_scaling_ignores_outliers_and_nan():
    rng = np.random.default_rng(1)
    data = rng.normal(1000, 10, (6, 64, 64)).astype(np.float32)
    data[0, 0, 0] = 1e9  # one hot pixel must not squash the range
    data[1, :5, :5] = np.nan
    source = FrameSource(data, 0)
    low, high = source.intensity_range()
    assert 950 < low < 1000 < high < 1050
    scaled = source.scaled(1)
    assert scaled.dtype == np.float32 and 0.0 <= scaled.min() and scaled.max() <= 1.0
    assert np.all(scaled[:5, :5] == 0.0)
    assert 0.3 < scaled[5:, 5:].mean() < 0.7


def test_constant_and_all_nan_frames_warn_and_segment(small_net):
    data = np.random.default_rng(2).normal(size=(4, 64, 80)).astype(np.float32)
    data[1] = 7.0
    data[2] = np.nan
    session = PropagationSession(small_net, data, memory="sam2")
    with pytest.warns(ConstantFrameWarning) as record:
        session.add_points(0, 1, [[32, 20]], [1])  # encodes the pair (0, 1)
        results = list(session.propagate("forward"))
    blank = [w for w in record if issubclass(w.category, ConstantFrameWarning)]
    assert len(blank) == 1  # one warning for the session, naming both frames
    assert "2 frames are blank" in str(blank[0].message)
    assert "frames 1-2" in str(blank[0].message)
    assert session.frames.constant_frames == {1: "constant (7.0)", 2: "all NaN"}
    assert [r.frame for r in results] == [0, 1, 2, 3]
    assert all(r.masks[1].shape == (64, 80) for r in results)


def test_all_nan_stack_warns_and_segments(small_net):
    data = np.full((2, 64, 64), np.nan, np.float32)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        session = PropagationSession(small_net, data, memory="sam2")
        result = session.add_points(0, 1, [[10, 10]], [1])
    assert any(issubclass(w.category, ConstantFrameWarning) for w in record)
    assert result.masks[1].shape == (64, 64)


def test_frames_are_read_one_at_a_time():
    class CountingArray:
        def __init__(self, array):
            self.array, self.reads = array, []
            self.shape, self.dtype = array.shape, array.dtype

        def __getitem__(self, index):
            self.reads.append(index)
            return self.array[index]

    data = CountingArray(np.zeros((50, 32, 32), np.uint16))
    source = FrameSource(data, 0)
    source.model_input(7, SAM2_INPUT)
    assert all(isinstance(index[0], int) for index in data.reads)  # never the whole stack
    assert len(data.reads) <= 17  # the percentile sample (16 frames) + the frame itself


def test_value_range_replaces_the_estimated_scaling_and_is_checked():
    from napari_samed2.engine import FrameDataError, FrameSource

    data = np.linspace(0, 1000, 2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    fixed = FrameSource(data, value_range=(0.0, 2000.0))
    assert fixed.intensity_range() == (0.0, 2000.0)
    assert fixed.scaled(1).max() == pytest.approx(0.5)
    with pytest.raises(FrameDataError, match="value_range"):
        FrameSource(data, value_range=(5.0, float("nan")))


def test_blank_frames_give_one_warning_per_session_naming_how_many(small_net):
    """A stack of 40 frames of which 30 are blank (an MRI volume's empty slices): one
    ConstantFrameWarning for the session, naming 30, however many runs."""
    rng = np.random.default_rng(3)
    data = rng.integers(0, 255, (40, 64, 80), dtype=np.uint8)
    data[:15] = 0
    data[25:] = 7
    session = PropagationSession(small_net, data)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        session.add_points(20, 1, [[32, 40]], [1])
        results = list(session.propagate("both"))
        results += list(session.propagate("forward", start=20))  # met again: no new warning
    blank = [w for w in record if issubclass(w.category, ConstantFrameWarning)]
    assert len(blank) == 1
    message = str(blank[0].message)
    assert "30 frames are blank (constant or all NaN)" in message
    assert "frames 0-14, 25-39" in message and "(of 40)" in message
    assert len(results) == 40 + 20 and all(r.masks[1].shape == (64, 80) for r in results)
    assert session.add_points(5, 2, [[10, 10]], [1]).masks[2].shape == (64, 80)
    assert len(session.frames.constant_frames) == 30


def test_a_prompt_on_a_blank_frame_warns_at_once(small_net):
    data = np.random.default_rng(4).integers(0, 255, (6, 64, 80), dtype=np.uint8)
    data[3] = 0
    session = PropagationSession(small_net, data)
    with pytest.warns(ConstantFrameWarning, match="frame is blank.*frame 3 is constant"):
        session.add_points(3, 1, [[32, 40]], [1])


def _pyramid(tmp_path, stack: np.ndarray, levels: int = 3):
    """A real multiscale zarr on disk: level i is ``stack`` downsampled 2**i in Y and X."""
    import zarr

    group = zarr.open_group(str(tmp_path / "pyramid.zarr"), mode="w")
    arrays = []
    for level in range(levels):
        step = 2**level
        data = stack[..., ::step, ::step]
        array = group.create_array(
            str(level), shape=data.shape, chunks=(1, *data.shape[1:]), dtype=data.dtype
        )
        array[:] = data
        arrays.append(array)
    reopened = zarr.open_group(str(tmp_path / "pyramid.zarr"), mode="r")
    return [reopened[str(level)] for level in range(levels)]


def test_a_multiscale_zarr_is_segmented_on_level_0(small_net, video, tmp_path):
    frames, _ = video
    pyramid = _pyramid(tmp_path, frames)
    on_pyramid = PropagationSession(small_net, pyramid)
    on_array = PropagationSession(small_net, frames)
    assert on_pyramid.frame_shape == frames.shape[1:] and on_pyramid.num_frames == len(frames)
    for session in (on_pyramid, on_array):
        session.add_points(0, 1, [[32, 20]], [1])
    pairs = zip(on_pyramid.propagate(), on_array.propagate(), strict=True)
    for from_pyramid, from_array in pairs:
        assert from_pyramid.frame == from_array.frame
        np.testing.assert_array_equal(from_pyramid.masks[1], from_array.masks[1])


def test_a_pyramid_is_read_one_frame_of_level_0_at_a_time():
    class CountingArray:
        def __init__(self, array):
            self.array, self.reads = array, []
            self.shape, self.dtype = array.shape, array.dtype

        def __getitem__(self, index):
            self.reads.append(index)
            return self.array[index]

    levels = [CountingArray(np.zeros((50, 64 // 2**i, 64 // 2**i), np.uint16)) for i in range(3)]
    source = FrameSource(levels, 0)
    assert source.frame_shape == (64, 64) and source.num_frames == 50
    source.model_input(7, SAM2_INPUT)
    assert levels[0].reads and all(isinstance(index[0], int) for index in levels[0].reads)
    assert levels[1].reads == [] and levels[2].reads == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([np.zeros((4, 30, 40)), np.zeros((4, 30, 40))], "not a multiscale pyramid: level 1"),
        ([np.zeros((4, 15, 20)), np.zeros((4, 30, 40))], "(4, 30, 40) is not smaller than"),
        ([np.zeros((4, 30, 40)), np.zeros((30, 40))], "not a multiscale pyramid"),
        ([np.zeros((4, 30, 40)), "level"], "item 1 is a str, not an array"),
        ([], "data is an empty list"),
    ],
)
def test_a_list_that_is_not_a_pyramid_is_refused(data, message):
    with pytest.raises(FrameDataError, match=re.escape(message)) as error:
        FrameSource(data, 0)
    assert "accepted: an array (numpy, dask or zarr) or a multiscale pyramid" in str(error.value)
