"""FrameSource: axes, dtypes, intensity scaling, sam2's preprocessing, and clear errors."""

from __future__ import annotations

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
