"""A label set as training clips: sources, known and absent frames, the split, prompts, shards."""

import numpy as np
import pytest
import torch

from napari_samed2.engine.frames import ModelInput
from napari_samed2.labelset import LabelSet, ObjectRecord
from napari_samed2.model import build_model
from napari_samed2.model.sam2_step import encode_images
from napari_samed2.train.frozen_features import FrozenFeatures
from napari_samed2.train.labelset_clips import LabelSetClips
from napari_samed2.train.labelset_data import read_labelset
from napari_samed2.train.prompts import PointPrompt
from napari_samed2.train.tracking import PromptSettings, track_clip
from napari_samed2.train.trainable import select_trainable

from .finetune_helpers import TINY

SIZE = 64
INPUT = ModelInput(SIZE, None, None)


def _square(labels, obj_id, row, col, side=8):
    labels[row : row + side, col : col + side] = obj_id


@pytest.fixture
def labelset(tmp_path):
    """Source "stack": frames 0, 2, 4, 6 complete; object 1 on 0-2, object 2 on 2-6; frame 5
    lists only object 2 (incomplete). Source "other": one frame with its own object 1."""
    labelset = LabelSet.create(tmp_path / "set")
    rng = np.random.default_rng(0)
    for frame in (0, 2, 4, 6, 5):
        labels = np.zeros((32, 32), np.uint8)
        if frame <= 2:
            _square(labels, 1, 4, 4)
        if frame >= 2:
            _square(labels, 2, 16, 16)
        image = (rng.integers(100, 200, (32, 32)) + 500 * (labels > 0)).astype(np.uint16)
        objects = None
        if frame == 0:
            objects = [ObjectRecord(1, prompts={"points": [[8.0, 8.0]], "labels": [1]})]
        source = {"kind": "file", "name": "stack.tif", "axis": 0, "frame": frame}
        labelset.add(image, labels, complete=frame != 5, objects=objects, source=source)
    labels = np.zeros((32, 32), np.uint8)
    _square(labels, 1, 10, 10)
    labelset.add(
        np.full((32, 32), 9, np.uint8) + labels, labels, source={"kind": "pairs", "name": "a.tif"}
    )
    return labelset


def test_entries_become_sources_with_known_and_absent_frames(labelset):
    data = read_labelset(labelset, holdout=0.0)
    stack, other = data.sources
    assert stack.frames == [0, 2, 4, 5, 6] and other.frames == [None]
    assert stack.images.shape == (5, 32, 32) and stack.images.dtype == np.uint16
    objects = {(o.source, o.obj_id): o for o in data.objects}
    assert sorted(objects) == [(0, 1), (0, 2), (1, 1)]
    # object 1: visible on frames 0, 2; absent on the complete frames 4, 6; unknown on 5
    assert objects[(0, 1)].present == [0, 1] and objects[(0, 1)].known == [0, 1, 2, 4]
    assert objects[(0, 2)].present == [1, 2, 3, 4] and objects[(0, 2)].known == [0, 1, 2, 3, 4]
    assert data.train == [0, 1, 2] and data.heldout == []


def test_the_split_holds_out_whole_objects_deterministically(labelset):
    first = read_labelset(labelset, holdout=0.34, seed=3)
    again = read_labelset(labelset, holdout=0.34, seed=3)
    assert (first.train, first.heldout) == (again.train, again.heldout)
    assert len(first.heldout) == 1 and sorted(first.train + first.heldout) == [0, 1, 2]
    seeds = {tuple(read_labelset(labelset, holdout=0.34, seed=s).heldout) for s in range(8)}
    assert len(seeds) > 1
    summary = first.summary()
    assert summary["heldout_objects"] == 1 and summary["train_objects"] == 2


def test_clips_follow_an_object_through_known_frames_and_absent_frames_are_empty(labelset):
    data = read_labelset(labelset, holdout=0.0)
    clips = LabelSetClips(data, INPUT, num_frames=4, objects_per_clip=3, augment=False)
    seen_absent = False
    for index in range(40):
        clip = clips.batch(index)
        frames = [key[1] for key in clip.frame_keys]
        assert clip.images.shape == (1, len(frames), 3, SIZE, SIZE)
        assert clip.masks.shape == (clip.num_objects, len(frames), SIZE, SIZE)
        assert frames == sorted(frames) or frames == sorted(frames, reverse=True)
        assert clip.masks[:, 0].flatten(1).any(-1).all()  # every object visible when prompted
        lead_source = clip.frame_keys[0][0]
        if lead_source == 0 and 4 in frames and clip.num_objects >= 1:
            position = frames.index(4)
            absent = ~clip.masks[:, position].flatten(1).any(-1)
            seen_absent |= bool(absent.any())
        assert 5 not in frames or clip.num_objects >= 1
    assert seen_absent


def test_end_clips_start_near_an_end_and_run_past_it(labelset):
    data = read_labelset(labelset, holdout=0.0)
    clips = LabelSetClips(data, INPUT, num_frames=4, augment=False, end_clips=1.0)
    crossed = 0
    for index in range(40):
        clip = clips.batch(index)
        lead = clip.masks[0].flatten(1).any(-1)
        if clip.frame_keys[0][0] == 1:  # "other": one frame, no end inside it
            assert len(clip.frame_keys) == 1
            continue
        # visible where prompted, absent on the last frame: the clip ran past the end
        assert bool(lead[0]) and not bool(lead[-1]), (clip.frame_keys, lead)
        crossed += 1
    assert crossed >= 20
    plain = LabelSetClips(data, INPUT, num_frames=4, augment=False, end_clips=0.0)
    ends = [bool(plain.batch(i).masks[0, -1].any()) for i in range(40)]
    assert any(ends)  # without end clips, many clips stay inside their object


def test_end_clips_outside_zero_to_one_are_refused(labelset):
    data = read_labelset(labelset, holdout=0.0)
    with pytest.raises(ValueError, match=r"end_clips \(1.5\) must be between 0 and 1"):
        LabelSetClips(data, INPUT, end_clips=1.5)


def test_stored_prompts_reach_the_clip_in_network_pixels(labelset):
    data = read_labelset(labelset, holdout=0.0)
    clips = LabelSetClips(data, INPUT, num_frames=1, objects_per_clip=1, augment=False)
    prompted = [c for c in (clips.batch(i) for i in range(30)) if c.prompts is not None]
    assert prompted
    prompt = prompted[0].prompts[0]
    # (row 8, col 8) of a 32-px frame is (x, y) = (16, 16) at 64 px, a positive click
    np.testing.assert_allclose(prompt.coords, [[16.0, 16.0]])
    assert prompt.labels.tolist() == [1]


def test_ranks_draw_from_disjoint_shares(labelset):
    data = read_labelset(labelset, holdout=0.0)
    leads = []
    for rank in (0, 1):
        clips = LabelSetClips(data, INPUT, rank=rank, world_size=2, augment=False)
        leads.append({clips.items[list(clips.sampler)[i]] for i in range(len(clips))})
    assert leads[0] | leads[1] == set(data.train)


def test_frozen_features_are_the_encoders_and_computed_once(labelset):
    torch.manual_seed(0)
    net = build_model(TINY, temporal_adapter=True).eval()
    select_trainable(net, "decoder")
    data = read_labelset(labelset, holdout=0.0)
    source = FrozenFeatures(
        LabelSetClips(data, ModelInput(128, None, None), num_frames=1), net, "cpu"
    )
    clip = source.batch(0)
    with torch.no_grad():
        maps, _ = encode_images(net, clip.images[:, 0])
    torch.testing.assert_close(clip.features.vision_feats[-1], maps[-1].flatten(2).permute(2, 0, 1))
    encoded = source.encoded
    for _ in range(3):
        source.batch(0)
    assert source.encoded == encoded


def test_stored_prompts_are_used_instead_of_simulated_ones(labelset):
    torch.manual_seed(0)
    net = build_model(TINY, temporal_adapter=True)
    data = read_labelset(labelset, holdout=0.0)
    clip = LabelSetClips(data, ModelInput(128, None, None), num_frames=2, augment=False).batch(0)
    settings = PromptSettings(mask=0.0, box=0.0, correct_other_frame=0.0)

    def first_dice(prompts):
        clip.prompts = prompts
        torch.manual_seed(1)
        return track_clip(net, clip, np.random.default_rng(2), settings).frame_dice[0]

    count = clip.num_objects
    assert first_dice([None] * count) == first_dice(None)  # none stored: simulated as before
    on = PointPrompt(np.array([[20.0, 20.0]], np.float32), np.array([1], np.int32))
    off = PointPrompt(np.array([[120.0, 3.0]], np.float32), np.array([0], np.int32))
    assert first_dice([on] * count) != first_dice([off] * count)
