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
