"""Prompts: every bad prompt or propagate call gives a clear error; good ones convert exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_samed2.engine import PromptError, PropagationError, PropagationSession
from napari_samed2.engine.prompts import point_inputs


def test_points_become_sam2_model_coordinates():
    coords = np.array([[10.0, 20.0], [0.0, 79.0]])  # (row, col)
    inputs = point_inputs(coords, np.array([1, 0]), (0, 0, 64, 80), 256, "cpu")
    expected = torch.tensor([[[20 / 80 * 256, 10 / 64 * 256], [79 / 80 * 256, 0.0]]])
    assert torch.allclose(inputs["point_coords"], expected)
    assert inputs["point_labels"].tolist() == [[1, 0]]
    zoomed = point_inputs(coords + np.array([8, 16]), np.array([1, 0]), (8, 16, 72, 96), 256, "cpu")
    assert torch.allclose(zoomed["point_coords"], expected)


def test_bad_prompts_give_clear_errors(small_net):
    frames = np.zeros((3, 64, 80), np.uint8)
    session = PropagationSession(small_net, frames, memory="sam2")
    with pytest.raises(PropagationError, match="no object has a prompt"):
        session.propagate()
    cases = [
        (lambda: session.add_points(3, 1, [[1, 1]], [1]), "frame 3 is out of range"),
        (lambda: session.add_points(-1, 1, [[1, 1]], [1]), "out of range"),
        (lambda: session.add_points(0, "a", [[1, 1]], [1]), "obj_id"),
        (lambda: session.add_points(0, 1, [[1, 1, 1]], [1]), "shape"),
        (lambda: session.add_points(0, 1, [[1, 1]], [2]), "labels must be 1"),
        (lambda: session.add_points(0, 1, [[1, 1], [2, 2]], [1]), "2 points but 1 labels"),
        (lambda: session.add_points(0, 1, [[100, 1]], [1]), "outside the frame"),
        (lambda: session.add_box(0, 1, (10, 10, 5, 20)), "row1 > row0"),
        (lambda: session.add_box(0, 1, (1, 2, 3)), "4 finite numbers"),
        (lambda: session.add_mask(0, 1, np.ones((10, 10))), "does not match the frame shape"),
        (lambda: session.remove_object(9), "not in this session"),
    ]
    for call, message in cases:
        with pytest.raises(PromptError, match=message):
            call()
    session.add_points(1, 1, [[30, 30]], [1])
    with pytest.raises(ValueError, match="direction must be one of"):
        session.propagate("sideways")
    with pytest.raises(PropagationError, match="needs direction"):
        session.propagate("both", stop=2)
    with pytest.raises(PropagationError, match="stop >= start"):
        session.propagate("forward", start=2, stop=1)
    with pytest.raises(ValueError, match="memory must be one of"):
        PropagationSession(small_net, frames, memory="fifo")
