"""Fine-tuning the embedded model makes it better where it is weak (a CI-sized proof).

On `synthetic.tissue_volume` stacks (nuclei that start and end between slices, stacked above
and below one another, a long axial blur, a low dynamic range on a large offset) samed2-nano
follows a clicked nucleus far beyond its end. Five complete consecutive slices of one stack
and 40 steps teach it; the test scores one-click propagation on *another* stack.
Measured on the development machine (1 torch thread, as the tests run, about 55 s): held-out
Dice 0.553 -> 0.575 and one-click propagation Dice 0.335 -> 0.397 on the other stack's 10
objects (before one-frame clips were always clicked: 0.607 and 0.459; with 2 threads 0.633 and
0.452: the small held-out split moves by a few hundredths with float rounding). The test asserts
that the kept weights beat the base on the held-out objects and about half the propagation
gain.
"""

import numpy as np
import pytest

from napari_samed2 import synthetic
from napari_samed2.engine import PropagationSession
from napari_samed2.labelset import LabelSet, import_layer
from napari_samed2.model import DEFAULT_MODEL, load_model
from napari_samed2.train.finetune import FinetuneSettings, finetune
from napari_samed2.train.metrics import dice
from napari_samed2.train.prompts import centre_click

SHAPE = (16, 96, 96)


def _propagation_dice(model, sample, obj_ids) -> float:
    """One click per object on its largest slice, propagated both ways: mean volume Dice."""
    session = PropagationSession(model, sample.image, axis=0)
    scores = []
    for obj_id in obj_ids:
        truth = sample.labels == obj_id
        frame = int(np.argmax(truth.sum(axis=(1, 2))))
        x, y = centre_click(truth[frame]).coords[0]
        session.reset(bank=True)
        session.add_points(frame, obj_id, [[float(y), float(x)]], [1])
        for _ in session.propagate("both"):
            pass
        predicted = np.zeros_like(truth)
        for index, result in session.results.items():
            predicted[index] = result.masks.get(obj_id, False)
        scores.append(dice(predicted, truth))
    session.close()
    return float(np.mean(scores))


def _inside(labels: np.ndarray, count: int) -> list[int]:
    """Objects that start and end inside the stack, a seeded choice."""
    ids = []
    for obj_id in np.unique(labels[labels > 0]):
        z = np.flatnonzero((labels == obj_id).any(axis=(1, 2)))
        if z[0] > 0 and z[-1] < labels.shape[0] - 1:
            ids.append(int(obj_id))
    return sorted(np.random.default_rng(0).choice(ids, count, replace=False).tolist())


@pytest.mark.slow
def test_a_few_dozen_steps_on_five_slices_improve_propagation_on_another_stack(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("NAPARI_SAMED2_CACHE", str(tmp_path / "cache"))
    train_stack = synthetic.tissue_volume(shape=SHAPE, seed=7)
    labelset = LabelSet.create(tmp_path / "set")
    middle = SHAPE[0] // 2
    frames = list(range(middle - 2, middle + 3))
    import_layer(labelset, train_stack.image, train_stack.labels, image_name="t", frames=frames)
    other = synthetic.tissue_volume(shape=SHAPE, seed=8)
    objects = _inside(other.labels, 10)

    base = load_model(DEFAULT_MODEL, device="cpu")
    before = _propagation_dice(base, other, objects)
    settings = FinetuneSettings(lr=1e-3, eval_every=20)
    result = finetune(labelset, DEFAULT_MODEL, tmp_path / "tuned.safetensors", steps=40,
                      device="cpu", holdout=0.3, settings=settings)  # fmt: skip
    after = _propagation_dice(load_model(result.path, device="cpu"), other, objects)

    assert result.heldout_after > result.heldout_before, result.history
    assert after >= before + 0.03, (before, after)
