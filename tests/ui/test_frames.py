"""Frame-axis inference and frame geometry (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_samed2.ui.frames import FrameAxisError, FrameGeometry, infer_frame_axis


@pytest.mark.parametrize(
    ("shape", "rgb", "labels", "candidates", "default", "kind"),
    [
        ((64, 64), False, (), (), None, "2d"),
        ((64, 64, 3), True, (), (), None, "2d"),
        ((10, 64, 64), False, ("z", "y", "x"), (0,), 0, "Z"),
        ((10, 64, 64), False, ("t", "y", "x"), (0,), 0, "T"),
        ((10, 64, 64), False, ("-3", "-2", "-1"), (0,), 0, "Z"),
        ((10, 64, 64, 3), True, ("t", "y", "x"), (0,), 0, "T"),
        ((4, 10, 64, 64), False, (), (0, 1), None, "ask"),
    ],
)
def test_infer_frame_axis(shape, rgb, labels, candidates, default, kind):
    inference = infer_frame_axis(shape, rgb, labels)
    assert (inference.candidates, inference.default, inference.kind) == (
        candidates,
        default,
        kind,
    )
    assert inference.needs_choice == (kind == "ask")


def test_infer_frame_axis_refuses_1d():
    with pytest.raises(FrameAxisError, match=r"at least 2 spatial dimensions, got shape \(5,\)"):
        infer_frame_axis((5,))


def test_geometry_of_a_4d_stack_holds_the_other_axis_at_the_viewer_position():
    data = np.arange(4 * 5 * 6 * 7).reshape(4, 5, 6, 7)
    geometry = FrameGeometry.for_layer(data.shape, False, frame_axis=1, position=(2.2, 3, 0, 0))
    assert geometry.fixed == {0: 2}
    np.testing.assert_array_equal(geometry.stack(data), data[2])
    np.testing.assert_array_equal(data[geometry.frame_index(4)], data[2, 4])
    assert geometry.frame_at((2, 3.4, 1, 1)) == 3
    rows, cols = np.array([1, 2]), np.array([3, 4])
    np.testing.assert_array_equal(
        data[geometry.full_indices(4, rows, cols)], data[2, 4, rows, cols]
    )


def test_geometry_of_a_2d_image_is_one_frame():
    data = np.arange(12).reshape(3, 4)
    geometry = FrameGeometry.for_layer(data.shape, False, frame_axis=None)
    assert geometry.stack(data).shape == (1, 3, 4)
    np.testing.assert_array_equal(data[geometry.frame_index(0)], data)
    assert geometry.frame_at(()) == 0


def test_geometry_refuses_bad_axes():
    with pytest.raises(FrameAxisError, match="needs a frame axis; choose one of"):
        FrameGeometry.for_layer((4, 5, 6, 7), False, frame_axis=None)
    with pytest.raises(FrameAxisError, match="frame axis 2 is not a leading axis"):
        FrameGeometry.for_layer((4, 5, 6, 7), False, frame_axis=2)


def _zarr_pyramid(path, stack: np.ndarray, levels: int = 3) -> list:
    """A real multiscale zarr on disk (level i downsampled 2**i in Y and X), reopened."""
    import zarr

    group = zarr.open_group(str(path), mode="w")
    for level in range(levels):
        data = stack[..., :: 2**level, :: 2**level]
        chunks = (*(1,) * (data.ndim - 2), *data.shape[-2:])
        group.create_array(str(level), shape=data.shape, chunks=chunks, dtype=data.dtype)[:] = data
    reopened = zarr.open_group(str(path), mode="r")
    return [reopened[str(level)] for level in range(levels)]


@pytest.mark.parametrize("shape", [(6, 64, 80), (3, 6, 64, 80), (64, 80)])
def test_a_multiscale_layer_is_segmented_on_level_0_lazily(tmp_path, shape):
    """A napari multiscale Image layer over a zarr pyramid on disk: the engine gets level
    0 as a lazy stack, and the masks equal those on the plain level-0 array."""
    import dask.array as da
    from napari.layers import Image

    from napari_samed2.engine import PropagationSession
    from napari_samed2.model import load_model

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :80]
    image = rng.normal(60, 15, shape)
    image[..., (yy - 32) ** 2 + (xx - 40) ** 2 < 100] += 120
    image = np.clip(image, 0, 255).astype(np.uint8)
    layer = Image(_zarr_pyramid(tmp_path / "image.zarr", image), multiscale=True)
    assert layer.multiscale and len(layer.data) == 3
    frame_axis = {3: 0, 4: 1, 2: None}[len(shape)]
    position = (1, 0, 0, 0)[: len(shape)]
    geometry = FrameGeometry.for_layer(layer.data.shape, layer.rgb, frame_axis, position)
    stack = geometry.stack(layer.data)
    assert isinstance(stack, da.Array)  # nothing read yet
    plain = geometry.stack(image)
    assert stack.shape == plain.shape

    model = load_model("samed2-nano", device="cpu")
    sessions = [PropagationSession(model, data) for data in (stack, plain)]
    prompted = [s.add_points(0, 1, [[32, 40]], [1]).masks[1] for s in sessions]
    np.testing.assert_array_equal(*prompted)
    assert prompted[0].sum() > 200  # the disk (314 px), not nothing
    runs = [list(s.propagate("forward")) for s in sessions]
    for from_layer, from_plain in zip(*runs, strict=True):
        np.testing.assert_array_equal(from_layer.masks[1], from_plain.masks[1])


def test_a_list_of_frames_is_not_taken_for_a_pyramid():
    from napari_samed2.engine import FrameDataError

    geometry = FrameGeometry.for_layer((4, 30, 40), False, 0)
    with pytest.raises(FrameDataError, match=r"not a multiscale pyramid.*np.stack them"):
        geometry.stack([np.zeros((4, 30, 40)), np.zeros((4, 30, 40))])
