"""Click seeds: clicks and boxes drawn into the mask prompt for models trained that way."""

import pytest
import torch

from napari_samed2.model import Preprocessing, click_seed_logits, with_click_seed
from napari_samed2.model.click_seed import BOX_LOGIT, SEED_PEAK


def _points(coords, labels):
    return torch.tensor([coords], dtype=torch.float32), torch.tensor([labels], dtype=torch.int32)


def test_positive_click_peaks_at_its_cell_and_negative_click_is_negative():
    coords, labels = _points([[130.0, 66.0], [30.0, 200.0]], [1, 0])
    seed = click_seed_logits(coords, labels, image_size=256)
    assert seed.shape == (1, 1, 64, 64)
    grid = seed[0, 0]
    row, col = divmod(int(grid.argmax()), 64)
    assert (row, col) == (16, 32)  # (y, x) = (66, 130) / 4
    assert float(grid.max()) == pytest.approx(SEED_PEAK)  # the click is on a cell centre
    assert grid[50, 7] < -0.9 * SEED_PEAK  # the negative click at (x, y) = (30, 200)
    assert abs(float(grid[0, 63])) < 1e-3  # far from both


def test_padding_points_draw_nothing_and_a_box_fills_its_rectangle():
    coords, labels = _points([[40.0, 40.0], [120.0, 80.0], [0.0, 0.0]], [2, 3, -1])
    grid = click_seed_logits(coords, labels, image_size=256)[0, 0]
    assert float(grid[15, 20]) == BOX_LOGIT  # inside: rows 10-20, cols 10-30
    assert float(grid[5, 5]) == 0.0 and float(grid[40, 40]) == 0.0


def test_seed_adds_to_previous_logits_and_bad_shapes_are_named():
    coords, labels = _points([[128.0, 128.0]], [1])
    previous = torch.full((1, 1, 64, 64), -3.0)
    summed = with_click_seed({"point_coords": coords, "point_labels": labels}, previous, 256)
    assert float(summed[0, 0, 32, 32]) > 5 and float(summed[0, 0, 0, 0]) == pytest.approx(-3.0)
    assert with_click_seed(None, previous, 256) is previous
    with pytest.raises(ValueError, match="mask-prompt grid"):
        with_click_seed({"point_coords": coords, "point_labels": labels}, previous[..., :32], 256)
    with pytest.raises(ValueError, match=r"\(N, P, 2\)"):
        click_seed_logits(coords[0], labels, 256)


def test_preprocessing_records_click_seed_and_old_records_default_to_off():
    seeded = Preprocessing(256, None, None, click_seed=True)
    assert Preprocessing.from_dict(seeded.to_dict()).click_seed
    old = {"image_size": 256, "mean": None, "std": None, "mask_threshold": 0.0}
    assert not Preprocessing.from_dict(old).click_seed
