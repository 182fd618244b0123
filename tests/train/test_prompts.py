"""Prompt simulation: clicks inside objects, boxes around them, corrections on errors."""

import numpy as np
import pytest

from napari_samed2.train.prompts import (
    NEGATIVE,
    POSITIVE,
    box_prompt,
    centre_click,
    correction_click,
    negative_click_near,
    random_click,
)


@pytest.fixture
def mask():
    mask = np.zeros((40, 50), bool)
    mask[10:21, 5:30] = True  # rows 10-20, cols 5-29
    return mask


def test_centre_click_is_the_most_interior_pixel(mask):
    prompt = centre_click(mask)
    x, y = prompt.coords[0]
    assert prompt.labels.tolist() == [POSITIVE]
    assert y == 15 and 10 <= x <= 24


def test_random_clicks_fall_inside_the_object(mask):
    rng = np.random.default_rng(0)
    for interior in (False, True):
        for _ in range(20):
            x, y = random_click(mask, rng, interior=interior).coords[0].astype(int)
            assert mask[y, x]


def test_negative_click_is_outside_but_near(mask):
    rng = np.random.default_rng(1)
    x, y = negative_click_near(mask, rng, margin=3).coords[0].astype(int)
    assert not mask[y, x]
    assert 7 <= y <= 23 and 2 <= x <= 32


def test_box_is_tight_without_jitter_and_near_with_it(mask):
    box = box_prompt(mask)
    assert box.coords.tolist() == [[5, 10], [29, 20]]
    assert box.labels.tolist() == [2, 3]
    jittered = box_prompt(mask, np.random.default_rng(2), jitter=0.1).coords
    assert np.all(np.abs(jittered - box.coords) <= 2.5)


def test_correction_click_targets_the_error(mask):
    rng = np.random.default_rng(3)
    missed = mask.copy()
    missed[10:21, 20:30] = False
    click = correction_click(mask, missed, rng)
    x, y = click.coords[0].astype(int)
    assert click.labels[0] == POSITIVE and mask[y, x] and not missed[y, x]
    too_much = mask.copy()
    too_much[30:35, 30:35] = True
    click = correction_click(mask, too_much, rng)
    x, y = click.coords[0].astype(int)
    assert click.labels[0] == NEGATIVE and too_much[y, x] and not mask[y, x]
    assert correction_click(mask, mask, rng) is None


def test_empty_or_wrong_masks_are_refused():
    with pytest.raises(ValueError, match="empty"):
        centre_click(np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match=r"\(2, 5, 5\)"):
        centre_click(np.ones((2, 5, 5), bool))
