"""The embedded samed2-nano model must follow the click, not segment the same blob everywhere.

Known defect of the current weights (docs/models.md): its masks do not depend on where the user
clicks. This test stays strict-xfail until retrained weights pass it, then the marker goes.
"""

from importlib import resources

import numpy as np
import pytest
from scipy import ndimage

from napari_samed2.engine import PropagationSession
from napari_samed2.model import REGISTRY, load_model
from napari_samed2.train.metrics import dice
from napari_samed2.train.synthetic import nuclei_image

NANO = resources.files("napari_samed2").joinpath(REGISTRY["samed2-nano"].bundled)


@pytest.mark.skipif(not NANO.is_file(), reason="the embedded samed2-nano weights are not built")
@pytest.mark.xfail(strict=True, reason="samed2-nano (1400 CPU steps) ignores the click position")
def test_clicks_on_different_nuclei_give_their_own_masks():
    sample = nuclei_image((128, 128), seed=11)
    model = load_model("samed2-nano", "cpu", progressbar=False)
    session = PropagationSession(model, sample.image)
    scores, masks = [], []
    for truth_id in [i for i in np.unique(sample.labels) if i][:6]:
        truth = sample.labels == truth_id
        depth = ndimage.distance_transform_edt(truth)
        row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
        mask = session.add_points(0, 1, [(row, col)], [1]).masks[1]
        scores.append(dice(mask, truth))
        masks.append(mask)
    assert not all(np.array_equal(masks[0], m) for m in masks[1:]), "same mask for every click"
    assert np.mean(scores) > 0.5
