"""Fine-tuning on a label set: outputs, the base left alone, the best weights kept, errors."""

import json
import threading

import numpy as np
import pytest
import torch

from napari_samed2.labelset import LabelSet
from napari_samed2.model import (
    CheckpointError,
    CheckpointNotFoundError,
    UnknownModelError,
    load_model,
)
from napari_samed2.model.download import file_sha256
from napari_samed2.model.user_models import user_models
from napari_samed2.train.finetune import FinetuneSettings, finetune
from napari_samed2.train.finetune_card import state_sha256
from napari_samed2.train.heldout import HeldOutDice
from napari_samed2.train.labelset_data import FinetuneDataError, read_labelset

from .finetune_helpers import tiny_base, volume_set

QUICK = FinetuneSettings(eval_every=1, num_frames=3, objects_per_clip=2, warmup=1)


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    """The list of fine-tuned models goes to a cache of this test's own."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NAPARI_SAMED2_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_base(tmp_path_factory.mktemp("base") / "tiny.safetensors")


@pytest.fixture(scope="module")
def labelset(tmp_path_factory):
    return volume_set(tmp_path_factory.mktemp("sets") / "set")


def test_finetune_writes_a_new_checkpoint_and_card_and_leaves_the_base_alone(
    base, labelset, tmp_path
):
    before = file_sha256(base)
    out = tmp_path / "models" / "tuned.safetensors"
    result = finetune(labelset, base, out, steps=3, device="cpu", holdout=0.3, settings=QUICK)
    assert file_sha256(base) == before
    assert result.path == out and out.is_file() and result.steps == 3
    # the new file loads like any model and holds the kept weights
    loaded = load_model(out, device="cpu")
    assert loaded.name == "tuned" and loaded.temporal_adapter
    assert loaded.preprocessing == load_model(base, device="cpu").preprocessing
    assert state_sha256(loaded.net) == state_sha256(result.model.net)
    # the card: base and its checksum, the set and its version, settings, Dice, steps, time
    card = json.loads(out.with_suffix(".json").read_text())
    assert card == result.card
    assert card["base"]["name"] == "tiny-base" and card["base"]["sha256"] == before
    assert card["sha256"] == file_sha256(out)
    assert card["labelset"]["path"] == str(labelset.path.resolve())
    assert card["labelset"]["format_version"] == 1 and card["labelset"]["entries"] == 3
    assert card["settings"]["train"] == "decoder" and card["settings"]["holdout"] == 0.3
    assert card["settings"]["steps"] == 3 and card["steps"] == 3
    dice = card["heldout_dice"]
    assert dice["before"] == result.heldout_before and dice["after"] == result.heldout_after
    assert 0.0 <= dice["before"] <= 1.0 and dice["after"] >= dice["before"]
    assert [step for step, _ in dice["history"]] == [0, 1, 2, 3]
    assert card["wall_seconds"] > 0
    # ... and in the file's own metadata
    from napari_samed2.model import read_checkpoint

    metadata = read_checkpoint(out).metadata
    assert metadata["finetune"]["base"]["sha256"] == before
    assert metadata["training"]["init_from"]["sha256"] == before
    # the model is in the user's list at once
    assert [(m.name, m.path) for m in user_models()] == [("tuned", str(out.resolve()))]
    # it never overwrites
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        finetune(labelset, base, out, steps=1, device="cpu", settings=QUICK)


def test_decoder_training_leaves_the_image_encoder_and_its_projections_unchanged(
    base, labelset, tmp_path
):
    out = tmp_path / "t.safetensors"
    settings = FinetuneSettings(lr=1e-2, num_frames=3, warmup=1)
    finetune(labelset, base, out, steps=2, device="cpu", holdout=0.0, settings=settings)
    old = load_model(base, device="cpu").net.state_dict()
    new = load_model(out, device="cpu").net.state_dict()
    frozen = [k for k in old if k.startswith(("image_encoder.", "sam_mask_decoder.conv_s"))]
    assert frozen and all(torch.equal(old[k], new[k]) for k in frozen)
    changed = [k for k in old if not torch.equal(old[k], new[k])]
    assert any(k.startswith("sam_mask_decoder.") for k in changed)
    assert any(k.startswith("memory_attention.") for k in changed)


def test_a_stop_request_ends_the_run_and_the_best_weights_are_kept(base, labelset, tmp_path):
    stop = threading.Event()
    seen = []

    def progress(report):
        seen.append(report)
        if report.step >= 4:
            stop.set()

    settings = FinetuneSettings(lr=3e-3, eval_every=1, num_frames=3, warmup=1)
    out = tmp_path / "stopped.safetensors"
    result = finetune(labelset, base, out, steps=50, device="cpu", holdout=0.3, seed=2,
                      progress=progress, stop=stop, settings=settings)  # fmt: skip
    assert result.stopped_by == "stop request" and result.steps == 4
    history = dict(result.history)
    assert sorted(history) == [0, 1, 2, 3, 4]
    best = max(history, key=history.get)
    assert result.best_step == best and result.heldout_after == history[best]
    # the written file holds those weights: scored again, it gives the best held-out Dice
    data = read_labelset(LabelSet.open(labelset.path), holdout=0.3, seed=2)
    assert HeldOutDice(data)(load_model(out, device="cpu")) == pytest.approx(history[best])
    assert seen[-1].best_dice == history[best] and 0.0 < seen[-1].fraction < 1.0


def test_a_stop_callable_and_a_time_budget_end_the_run(base, labelset, tmp_path):
    calls = []
    result = finetune(labelset, base, tmp_path / "a.safetensors", steps=20, device="cpu",
                      holdout=0.0, stop=lambda: len(calls.append(1) or calls) > 2)  # fmt: skip
    assert result.stopped_by == "stop request" and result.steps == 2
    assert result.heldout_before is None and result.card["heldout_dice"]["after"] is None
    timed = finetune(labelset, base, tmp_path / "b.safetensors", minutes=0.002, device="cpu",
                     holdout=0.0)  # fmt: skip
    assert timed.stopped_by == "time" and timed.wall_seconds < 30


def _one_object_set(path):
    labelset = LabelSet.create(path)
    image = np.random.default_rng(0).integers(0, 1000, (32, 32)).astype(np.uint16)
    labels = np.zeros((32, 32), np.uint16)
    labels[8:20, 8:20] = 1
    labelset.add(image, labels, source={"kind": "layer", "name": "one", "frame": 0, "axis": 0})
    return labelset


def test_clear_errors_before_any_training(base, tmp_path):
    out = tmp_path / "x.safetensors"
    with pytest.raises(FinetuneDataError, match="is empty"):
        finetune(LabelSet.create(tmp_path / "empty"), base, out, steps=1, device="cpu")
    small = _one_object_set(tmp_path / "small")
    with pytest.raises(FinetuneDataError, match=r"holds out none.*--holdout 0"):
        finetune(small, base, out, steps=1, device="cpu", holdout=0.2)
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        finetune(small, tmp_path / "missing.safetensors", out, steps=1, holdout=0.0)
    with pytest.raises(UnknownModelError, match="neither a known model"):
        finetune(small, "no-such-model", out, steps=1, holdout=0.0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        finetune(tmp_path / "no-set", base, out, steps=1)
    with pytest.raises(ValueError, match="train must be one of"):
        finetune(small, base, out, steps=1, train="encoder")
    with pytest.raises(ValueError, match="holdout must be"):
        finetune(small, base, out, steps=1, holdout=1.0)
    with pytest.raises(ValueError, match="steps must be"):
        finetune(small, base, out, steps=0)
    with pytest.raises(ValueError, match="minutes must be"):
        finetune(small, base, out, minutes=-1)
    with pytest.raises(CheckpointError, match=".safetensors"):
        finetune(small, base, tmp_path / "x.pt", steps=1)
    with pytest.raises(CheckpointError, match="base model's file|refusing to overwrite"):
        finetune(small, base, base, steps=1, holdout=0.0)
    assert not out.exists()


def test_frames_of_one_source_with_different_shapes_are_refused(base, tmp_path):
    labelset = LabelSet.create(tmp_path / "mixed")
    source = {"kind": "file", "name": "stack.tif", "axis": 0}
    for frame, size in ((0, 32), (1, 40)):
        labels = np.zeros((size, size), np.uint8)
        labels[4:12, 4:12] = 1
        image = np.full((size, size), 7, np.uint16)
        labelset.add(image, labels, source={**source, "frame": frame})
    with pytest.raises(ValueError, match=r"differ: \(32, 32\) uint16 vs \(40, 40\)"):
        finetune(labelset, base, tmp_path / "m.safetensors", steps=1, holdout=0.0)


def test_adapters_need_a_network_with_adapters(tmp_path, labelset):
    from napari_samed2.model import Preprocessing, build_model, save_checkpoint

    from .finetune_helpers import TINY

    plain = save_checkpoint(
        tmp_path / "plain.safetensors",
        build_model(TINY),
        config=TINY,
        temporal_adapter=False,
        preprocessing=Preprocessing(128, None, None, 0.0),
        name="plain",
    )
    with pytest.raises(ValueError, match="no temporal adapters"):
        finetune(labelset, plain, tmp_path / "p.safetensors", steps=1, train="adapters")
    result = finetune(labelset, plain, tmp_path / "q.safetensors", steps=1, train="all",
                      holdout=0.0)  # fmt: skip
    assert result.card["settings"]["trainable_parameters"] == sum(
        p.numel() for p in build_model(TINY).parameters()
    )


def _tiny_object_set(path, size: int, pixels: int):
    """One complete frame whose only object is ``pixels`` pixels in a row."""
    labelset = LabelSet.create(path)
    image = np.random.default_rng(0).integers(0, 1000, (size, size)).astype(np.uint16)
    labels = np.zeros((size, size), np.uint16)
    labels[size // 2, size // 2 : size // 2 + pixels] = 1
    labelset.add(image, labels, source={"kind": "layer", "name": "tiny", "frame": 0, "axis": 0})
    return labelset


def test_a_two_pixel_object_trains(base, tmp_path):
    # 2 px of a 64-px frame are 8 px at the net's 128: promptable, but smaller than the click
    # task takes, so a one-frame clip prompted with its mask once gave a loss without gradient
    labelset = _tiny_object_set(tmp_path / "tiny", 64, 2)
    out = tmp_path / "tiny.safetensors"
    result = finetune(labelset, base, out, steps=20, device="cpu", holdout=0.0, settings=QUICK)
    assert result.steps == 20
    old = load_model(base, device="cpu").net.state_dict()
    new = load_model(out, device="cpu").net.state_dict()
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("sam_mask_decoder."))


def test_an_object_too_small_to_prompt_is_named_before_training(base, tmp_path):
    # 1 px of a 256-px frame is a quarter pixel at the net's 128
    labelset = _tiny_object_set(tmp_path / "dot", 256, 1)
    out = tmp_path / "dot.safetensors"
    with pytest.raises(FinetuneDataError, match=r"object 1 of 'tiny' \(largest: 1 px on entry 1"):
        finetune(labelset, base, out, steps=1, device="cpu", holdout=0.0)
    assert not out.exists()
