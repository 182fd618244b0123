"""Training on a tiny net: the loss goes down on a fixed clip; resuming gives the same weights."""

import itertools
import json

import numpy as np
import pytest
import torch

from napari_samed2.model import build_model, load_model, small_config
from napari_samed2.train.clips import ClipSampler, scale_intensity
from napari_samed2.train.tracking import PromptSettings, _tracked_objects, track_clip
from napari_samed2.train.trainer import (
    TrainSettings,
    export_weights,
    learning_rate,
    read_log,
    train,
)

TINY = small_config(image_size=128)


def _tiny_settings(**overrides):
    values = dict(
        steps=4,
        batch_size=1,
        num_frames=2,
        warmup=2,
        checkpoint_every=2,
        log_every=1,
        config=TINY,
        mix={"nuclei": 1.0},
    )
    values.update(overrides)
    return TrainSettings(**values)


def test_learning_rate_warms_up_then_decays():
    settings = TrainSettings(steps=100, warmup=10, lr=1.0, final_lr_fraction=0.1)
    rates = [learning_rate(step, settings) for step in range(100)]
    assert rates[0] == pytest.approx(0.1)
    assert rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))
    assert rates[-1] == pytest.approx(0.1, abs=0.01)


def test_scale_intensity_matches_percentile_scaling():
    stack = np.arange(1000, dtype=np.uint16).reshape(10, 10, 10)
    scaled = scale_intensity(stack)
    low, high = np.percentile(stack, (0.5, 99.5))
    assert scaled.dtype == np.float32
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    assert scaled.flat[500] == pytest.approx((500 - low) / (high - low), rel=1e-6)
    assert scale_intensity(np.full((4, 4), 200, np.uint8)).max() == pytest.approx(200 / 255)


def test_clip_sampler_is_deterministic_and_masks_are_nonempty_on_the_prompted_frame():
    sampler = ClipSampler(image_size=128, num_frames=2, batch_size=2, seed=3, field_sizes=(64,))
    first, again = sampler.batch(5), sampler.batch(5)
    assert first.images.shape == (2, 2, 3, 128, 128)
    assert torch.equal(first.images, again.images) and torch.equal(first.masks, again.masks)
    assert first.masks[:, 0].flatten(1).sum(-1).min() >= 24
    assert 0.0 <= float(first.images.min()) and float(first.images.max()) <= 1.0


def test_several_objects_per_clip_share_the_clip_and_the_first_ones_are_tracked():
    sampler = ClipSampler(image_size=128, num_frames=2, batch_size=2, seed=3, objects_per_clip=3)
    clip = sampler.batch(0)
    assert clip.images.shape[:2] == (2, 2) and clip.masks.shape == (6, 2, 128, 128)
    assert clip.object_clips().tolist() == [0, 0, 0, 1, 1, 1]
    assert _tracked_objects(clip.object_clips(), 2).tolist() == [0, 1, 3, 4]
    assert _tracked_objects(clip.object_clips(), 0).tolist() == list(range(6))


def test_event_focus_draws_clips_around_divisions_and_entries_with_those_cells_first():
    def ends_or_starts(sampler, batches=12):
        """Fraction of tracked objects absent on some later frame of their clip."""
        changing = total = 0
        for index in range(batches):
            clip = sampler.batch(index)
            present = clip.masks.flatten(2).any(-1)  # (N, T)
            first = [int((clip.object_clips()[:i] == c).sum()) == 0
                     for i, c in enumerate(clip.object_clips())]  # fmt: skip
            changing += int((~present[first, 1:]).any(-1).sum())
            total += sum(first)
        return changing / total

    settings = dict(image_size=64, num_frames=4, batch_size=2, seed=5, objects_per_clip=4,
                    mix={"timelapse": 1.0}, field_sizes=(64,))  # fmt: skip
    plain = ClipSampler(**settings)
    focused = ClipSampler(**settings, event_focus=1.0)
    # the first object of a focused clip is a mother, a daughter or an entering cell: in the
    # clip's frames it ends (mother) or, run backwards, does not exist yet
    assert ends_or_starts(focused) >= 0.5
    assert ends_or_starts(plain) <= 0.25
    # event_focus=0 draws exactly the clips a sampler without the option draws
    again = ClipSampler(**settings, event_focus=0.0).batch(3)
    assert torch.equal(again.images, plain.batch(3).images)
    with pytest.raises(ValueError, match="event_focus must be in"):
        ClipSampler(**settings, event_focus=1.5)


@pytest.mark.parametrize("kind", ["tissue-volume", "nuclei-volume"])
def test_end_focus_runs_clips_past_the_end_of_their_first_object(kind):
    def first_objects_presence(sampler, batches=6):
        """(K, T) presence of each clip's first tracked object."""
        rows = []
        for index in range(batches):
            clip = sampler.batch(index)
            present = clip.masks.flatten(2).any(-1)  # (N, T)
            owners = clip.object_clips()
            rows += [present[int(torch.nonzero(owners == c)[0])] for c in owners.unique()]
        return torch.stack(rows)

    settings = dict(image_size=64, num_frames=4, batch_size=2, seed=7, objects_per_clip=3,
                    mix={kind: 1.0}, field_sizes=(96,))  # fmt: skip
    focused = first_objects_presence(ClipSampler(**settings, end_focus=1.0))
    # present on the first frame, gone by the last, and never back once gone
    assert focused[:, 0].all()
    ends = ~focused[:, -1]
    assert ends.float().mean() >= 0.75
    for row in focused[ends]:
        gone = int(torch.nonzero(~row)[0])
        assert not row[gone:].any(), row
    plain = first_objects_presence(ClipSampler(**settings))
    assert (~plain[:, -1]).float().mean() < ends.float().mean()
    # end_focus=0 draws exactly the clips a sampler without the option draws
    assert torch.equal(
        ClipSampler(**settings, end_focus=0.0).batch(2).images,
        ClipSampler(**settings).batch(2).images,
    )
    with pytest.raises(ValueError, match=r"end_focus must be in \[0, 1\], got -0.1"):
        ClipSampler(**settings, end_focus=-0.1)


def test_a_few_steps_on_one_clip_reduce_the_loss():
    torch.manual_seed(0)
    net = build_model(TINY, temporal_adapter=True).train()
    sampler = ClipSampler(
        image_size=128,
        num_frames=2,
        batch_size=1,
        seed=1,
        mix={"nuclei": 1},
        objects_per_clip=2,
        field_sizes=(96,),
    )
    clip = sampler.batch(0)
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3)
    settings = PromptSettings(
        mask=0.0,
        box=0.0,
        negative=0.0,
        correct_other_frame=0.0,
        tracked_per_clip=1,
        click_task=True,
    )
    losses = []
    for step in range(6):
        outcome = track_clip(net, clip, np.random.default_rng(step), settings)
        optimizer.zero_grad()
        outcome.loss.total.backward()
        optimizer.step()
        losses.append(float(outcome.loss.total.detach()))
        assert 0.0 <= outcome.click_dice <= 1.0
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])
    # the adapters are trained with the rest
    adapter = net.image_encoder.trunk.blocks[0].adapter.linear_up.weight
    assert adapter.grad is not None and adapter.grad.abs().sum() > 0


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path):
    settings = _tiny_settings(steps=3, checkpoint_every=1)
    whole = train(settings, tmp_path / "whole", device="cpu", progress=False)
    train(settings, tmp_path / "split", device="cpu", stop_after=2, progress=False)
    resumed = train(settings, tmp_path / "split", device="cpu", progress=False)
    assert resumed.steps_done == whole.steps_done == 3
    for (name, a), (_, b) in zip(
        whole.net.state_dict().items(), resumed.net.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    log = read_log(tmp_path / "split")
    assert [line["step"] for line in log] == [1, 2, 3]
    assert all(np.isfinite(line["total"]) for line in log)


def test_resume_with_other_settings_is_refused(tmp_path):
    train(_tiny_settings(steps=2), tmp_path, device="cpu", stop_after=1, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(_tiny_settings(steps=2, lr=0.5), tmp_path, device="cpu", progress=False)
    # the thread count is how it runs, not what it learns: a resume may change it
    threads = torch.get_num_threads()
    try:
        resumed = train(_tiny_settings(steps=2, threads=1), tmp_path, device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert resumed.steps_done == 2


def test_export_loads_back_with_the_same_weights(tmp_path):
    result = train(_tiny_settings(steps=1), tmp_path / "run", device="cpu", progress=False)
    path = export_weights(tmp_path / "run", tmp_path / "tiny.safetensors", name="tiny-test")
    loaded = load_model(path, device="cpu")
    assert loaded.name == "tiny-test"
    assert loaded.temporal_adapter
    assert loaded.preprocessing.mean is None and loaded.preprocessing.image_size == 256
    for key, value in result.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value), key


def test_runs_saved_before_new_settings_existed_still_resume(tmp_path):
    settings = _tiny_settings(steps=2, checkpoint_every=1)
    train(settings, tmp_path, device="cpu", stop_after=1, progress=False)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    stored = json.loads(state["settings"])
    del stored["focal_weight"], stored["dice_weight"]  # as written by an older version
    state["settings"] = json.dumps(stored)
    torch.save(state, tmp_path / "last.pt")
    assert train(settings, tmp_path, device="cpu", progress=False).steps_done == 2
    with pytest.raises(ValueError, match="focal_weight"):
        train(_tiny_settings(steps=2, focal_weight=1.0), tmp_path, device="cpu", progress=False)


def test_export_records_the_loss_weights_and_extra_record(tmp_path):
    train(_tiny_settings(steps=1, focal_weight=1.0, dice_weight=5.0), tmp_path / "run",
          device="cpu", progress=False)  # fmt: skip
    path = export_weights(tmp_path / "run", tmp_path / "w.safetensors", record={"note": "x"})
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["loss_weights"]["focal"] == 1.0 and record["loss_weights"]["dice"] == 5.0
    assert record["loss_weights"]["object_score"] == 1.0 and "end_focus" not in record
    assert record["note"] == "x" and record["steps"] == 1
    train(_tiny_settings(steps=1, object_score_weight=3.0, end_focus=0.5), tmp_path / "run2",
          device="cpu", progress=False)  # fmt: skip
    record = json.loads(
        export_weights(tmp_path / "run2", tmp_path / "w2.safetensors")
        .with_suffix(".json")
        .read_text()
    )
    assert record["loss_weights"]["object_score"] == 3.0 and record["end_focus"] == 0.5


def test_click_seed_changes_the_training_loss_and_is_exported(tmp_path):
    sampler = ClipSampler(image_size=128, num_frames=2, batch_size=1, seed=3,
                          mix={"nuclei": 1.0}, objects_per_clip=2)  # fmt: skip
    clip = sampler.batch(0)
    torch.manual_seed(0)
    net = build_model(TINY, temporal_adapter=True)
    losses = {}
    for click_seed in (False, True):
        # the first prompt is a click (mask and box probabilities 0), so the seed is used
        settings = PromptSettings(mask=0.0, box=0.0, click_task=True, click_seed=click_seed)
        outcome = track_clip(net, clip, np.random.default_rng(1), settings)
        losses[click_seed] = float(outcome.loss.total)
    assert losses[False] != pytest.approx(losses[True], rel=1e-6)
    settings = _tiny_settings(steps=1, click_seed=True, carry_mask=True)
    train(settings, tmp_path / "run", device="cpu", progress=False)
    path = export_weights(tmp_path / "run", tmp_path / "seeded.safetensors", name="seeded")
    preprocessing = load_model(path, device="cpu").preprocessing
    assert preprocessing.click_seed and preprocessing.carry_mask
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["click_seed"] is True and record["carry_mask"] is True


def test_carry_mask_changes_tracking_but_not_the_prompted_frame():
    sampler = ClipSampler(image_size=128, num_frames=4, batch_size=1, seed=5,
                          mix={"nuclei-volume": 1.0}, objects_per_clip=1)  # fmt: skip
    clip = sampler.batch(0)
    torch.manual_seed(0)
    net = build_model(TINY, temporal_adapter=True)
    dice = {}
    for carry in (False, True):
        settings = PromptSettings(mask=0.0, box=0.0, correct_other_frame=0.0, carry_mask=carry,
                                  carry_drop=0.0)  # fmt: skip
        torch.manual_seed(1)
        dice[carry] = track_clip(net, clip, np.random.default_rng(2), settings).frame_dice
    assert dice[False][0] == dice[True][0]
    assert not np.allclose(dice[False][1:], dice[True][1:])


def test_init_from_starts_from_given_weights_and_refuses_other_architectures(tmp_path):
    first = train(_tiny_settings(steps=1), tmp_path / "a", device="cpu", progress=False)
    first_seed = _tiny_settings().seed
    weights = export_weights(tmp_path / "a", tmp_path / "a.safetensors", name="a")
    settings = _tiny_settings(steps=1, lr=0.0, init_from=str(weights))
    second = train(settings, tmp_path / "b", device="cpu", progress=False)
    for key, value in first.net.state_dict().items():
        assert torch.equal(second.net.state_dict()[key], value), key
    from napari_samed2.model import CheckpointMismatchError

    other = _tiny_settings(steps=1, config=small_config(image_size=128, embed_dim=24),
                           init_from=str(weights))  # fmt: skip
    with pytest.raises(CheckpointMismatchError, match="does not fit"):
        train(other, tmp_path / "c", device="cpu", progress=False)
    # the export says where it started, with that model's own record, even once it is gone
    weights.unlink()
    exported = export_weights(tmp_path / "b", tmp_path / "b.safetensors", name="b")
    record = json.loads(exported.with_suffix(".json").read_text())
    assert record["init_from"]["source"] == str(weights)
    assert record["init_from"]["training"]["steps"] == 1
    assert record["init_from"]["training"]["seed"] == first_seed


def test_a_one_frame_clip_always_has_a_loss_to_learn_from():
    # a mask prompt is its own output: a one-frame clip is clicked or boxed instead
    torch.manual_seed(0)
    net = build_model(TINY)
    clip = ClipSampler(image_size=128, num_frames=1, batch_size=1, seed=0, field_sizes=(64,)).batch(
        0
    )
    for seed in range(3):
        outcome = track_clip(net, clip, np.random.default_rng(seed), PromptSettings(mask=1.0))
        assert outcome.loss.total.requires_grad and float(outcome.loss.total.detach()) > 0
