"""Motion estimates for carried masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_samed2.engine.motion import object_shift, shift_logits


def _blob(shape, centre, radius=6.0) -> np.ndarray:
    rows, cols = np.indices(shape)
    return np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * radius**2))


def test_object_shift_finds_how_far_the_object_moved():
    rng = np.random.default_rng(0)
    before = _blob((64, 64), (30, 30)) + 0.02 * rng.normal(size=(64, 64))
    after = _blob((64, 64), (33, 28)) + 0.02 * rng.normal(size=(64, 64))
    dy, dx = object_shift(before, after, (22, 22, 39, 39))
    assert dy == pytest.approx(3, abs=0.5) and dx == pytest.approx(-2, abs=0.5)


def test_object_shift_gives_up_where_there_is_no_telling():
    blob = _blob((64, 64), (30, 30))
    assert object_shift(blob, np.zeros((64, 64)), (22, 22, 39, 39)) is None  # blank frame
    assert object_shift(blob, blob, (30, 30, 33, 33), margin=0.5) is None  # window too small
    far = _blob((64, 64), (30, 52))  # moved further than its own size
    assert object_shift(blob, far, (26, 26, 35, 35), margin=2.0) is None
    with pytest.raises(ValueError, match="differ in shape"):
        object_shift(blob, blob[:32], (22, 22, 39, 39))


def test_shift_logits_moves_the_mask_and_fills_with_background():
    logits = torch.full((1, 1, 16, 16), -8.0)
    logits[0, 0, 4:8, 4:8] = 8.0
    moved = shift_logits(logits, 2, -3)
    inside = (moved[0, 0] > 0).numpy()
    expected = np.zeros((16, 16), bool)
    expected[6:10, 1:5] = True
    np.testing.assert_array_equal(inside, expected)
    assert float(moved.min()) == pytest.approx(-8.0)
    assert torch.allclose(shift_logits(logits, 0, 0), logits)
