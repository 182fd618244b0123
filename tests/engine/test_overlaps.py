"""resolve_overlaps: one object per pixel, the highest logit wins, nothing else changes."""

from __future__ import annotations

import numpy as np

from napari_samed2.engine.overlaps import resolve_overlaps


def _logits_reader(logits: dict[int, np.ndarray], calls: list):
    def logits_in(obj_id, box):
        calls.append((obj_id, box))
        row0, col0, row1, col1 = box
        return logits[obj_id][row0:row1, col0:col1]

    return logits_in


def test_contested_pixels_go_to_the_highest_logit():
    rows, cols = np.mgrid[0:20, 0:30]
    # two discs whose logits fall with the distance from their centres; they overlap
    logits = {
        1: 8.0 - np.hypot(rows - 10, cols - 10),
        2: 8.0 - np.hypot(rows - 10, cols - 20) + 0.5,  # object 2 is a little surer
        3: np.full((20, 30), -np.inf),  # an object far away claims nothing here
    }
    masks = {obj: value > 0 for obj, value in logits.items()}
    masks[3] = np.zeros((20, 30), bool)
    masks[3][0, 0] = True
    calls = []
    resolved = resolve_overlaps(masks, _logits_reader(logits, calls))

    assert not (resolved[1] & resolved[2]).any()
    assert np.array_equal(resolved[1] | resolved[2], masks[1] | masks[2])
    contested = masks[1] & masks[2]
    expected_two = contested & (logits[2] > logits[1])
    assert expected_two.any() and (contested & ~expected_two).any()
    assert np.array_equal(resolved[2] & contested, expected_two)
    assert resolved[3] is masks[3]  # untouched objects keep their array
    # logits are read only for the claimants, over the contested pixels' box only
    assert sorted(obj for obj, _ in calls) == [1, 2]
    ys, xs = np.nonzero(contested)
    assert all(box == (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) for _, box in calls)


def test_disjoint_masks_and_single_objects_are_returned_unchanged():
    one = np.zeros((5, 5), bool)
    one[:2] = True
    two = np.zeros((5, 5), bool)
    two[3:] = True
    calls = []
    resolved = resolve_overlaps({1: one, 2: two}, _logits_reader({}, calls))
    assert resolved[1] is one and resolved[2] is two and calls == []
    assert resolve_overlaps({4: one}, _logits_reader({}, calls)) == {4: one}
    assert resolve_overlaps({}, _logits_reader({}, calls)) == {}
