"""Temporal connectivity of tracked masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_samed2.engine.connectivity import keep_connected


def _logits(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.where(mask, 3.0, -3.0).astype(np.float32))[None, None]


def test_islands_away_from_the_previous_mask_are_dropped():
    before = np.zeros((16, 16), bool)
    before[4:8, 4:8] = True
    now = np.zeros((16, 16), bool)
    now[5:9, 5:9] = True  # the object, moved by a pixel
    now[12:14, 12:14] = True  # an island on something else
    cleaned = keep_connected(_logits(now), _logits(before))
    kept = cleaned[0, 0].numpy() > 0
    expected = now.copy()
    expected[12:14, 12:14] = False
    np.testing.assert_array_equal(kept, expected)
    assert float(cleaned[0, 0, 12, 12]) == -1.0  # just below the threshold
    assert float(cleaned[0, 0, 6, 6]) == 3.0  # the kept part keeps its logits


def test_nothing_changes_when_all_parts_touch_or_there_is_no_telling():
    before = np.zeros((16, 16), bool)
    before[2:12, 2:4] = True
    now = np.zeros((16, 16), bool)
    now[2:5, 2:4] = True
    now[9:12, 2:4] = True  # two parts, both on the old mask
    logits = _logits(now)
    assert keep_connected(logits, _logits(before)) is logits
    empty = _logits(np.zeros((16, 16), bool))
    assert keep_connected(logits, empty) is logits  # the object was absent: keep all
    assert keep_connected(empty, _logits(before)) is empty
    elsewhere = np.zeros((16, 16), bool)
    elsewhere[13:15, 13:15] = True
    elsewhere[0:2, 13:15] = True
    moved = _logits(elsewhere)
    assert keep_connected(moved, _logits(before)) is moved  # no part touches: a jump, kept
    # the threshold decides what counts as the mask
    shifted = keep_connected(logits + 1.0, _logits(before) + 1.0, threshold=1.0)
    assert torch.equal(shifted, logits + 1.0)


def test_shapes_must_match():
    with pytest.raises(ValueError, match=r"differ in shape"):
        keep_connected(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4))
