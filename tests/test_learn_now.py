"""Learn from my corrections, headless: the session's confirmed frames train beside the set's
entries, so corrections saying "absent here" teach the object score."""

import numpy as np
import pytest
import torch

from napari_samed2.engine.frames import ModelInput
from napari_samed2.engine.session import PropagationSession
from napari_samed2.labelset import LabelSet
from napari_samed2.learn_now import SourceEntries, confirmed_entries, learn_now
from napari_samed2.model import load_model
from napari_samed2.train.finetune import FinetuneSettings
from napari_samed2.train.labelset_clips import LabelSetClips
from napari_samed2.train.labelset_data import FinetuneDataError, read_labelset

from .train.finetune_helpers import tiny_base

QUICK = FinetuneSettings(eval_every=1, num_frames=3, objects_per_clip=2, warmup=1)
PRESENT, ABSENT = 1, (4, 5)  # the prompted frame; the corrections "absent here"


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAMED2_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def _volume():
    """``(6, 64, 64)`` uint8: a bright disk on frames 0-2, only noise on 3-5."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    disk = (yy - 32) ** 2 + (xx - 30) ** 2 < 10**2
    volume = rng.normal(60, 15, (6, 64, 64))
    volume[:3][:, disk] += 120
    return np.clip(volume, 0, 255).astype(np.uint8), disk


def _absent_corrections(tmp_path):
    """A session prompted on `PRESENT` and corrected to empty on `ABSENT`; a set holding only
    those corrections (complete frames without the object)."""
    model = load_model(tiny_base(tmp_path / "tiny.safetensors"), device="cpu")
    volume, disk = _volume()
    session = PropagationSession(model, volume, axis=0)
    session.add_mask(PRESENT, 1, disk)
    labelset = LabelSet.create(tmp_path / "set")
    for frame in ABSENT:
        session.correct(frame, 1, np.zeros_like(disk))
        source = {"kind": "layer", "name": "volume", "axis": 0, "frame": frame, "position": []}
        labelset.add(volume[frame], np.zeros(disk.shape, np.uint16), source=source)
    return model, session, labelset


def test_absent_corrections_alone_give_nothing_to_prompt(tmp_path):
    _model, _session, labelset = _absent_corrections(tmp_path)
    with pytest.raises(FinetuneDataError, match="no labelled object"):
        read_labelset(SourceEntries(labelset, "volume"), holdout=0.0)


def test_confirmed_frames_make_clips_from_present_into_absent_frames(tmp_path):
    model, session, labelset = _absent_corrections(tmp_path)
    confirmed = confirmed_entries(session, labelset, "volume")
    assert [c.frame for c in confirmed] == [PRESENT] and confirmed[0].object_ids == [1]
    assert confirmed[0].id > max(e.id for e in labelset.entries())
    data = read_labelset(SourceEntries(labelset, "volume", confirmed), holdout=0.0)
    (obj,) = data.objects
    assert [data.sources[0].frames[k] for k in obj.known] == [PRESENT, *ABSENT]
    assert [data.sources[0].frames[k] for k in obj.present] == [PRESENT]
    clips = LabelSetClips(
        data, ModelInput(model.image_size, None, None), num_frames=3, augment=False
    )
    areas = [clip.masks[0].flatten(1).sum(-1).tolist() for clip in map(clips.batch, range(8))]
    assert any(len(a) == 3 and a[0] > 0 and a[1:] == [0, 0] for a in areas), areas


def test_learn_now_trains_the_object_score_on_absent_corrections(tmp_path):
    model, session, labelset = _absent_corrections(tmp_path)
    head = model.net.sam_mask_decoder.pred_obj_score_head
    before = {k: v.clone() for k, v in head.state_dict().items()}
    result = learn_now(
        session, model, labelset, source="volume", steps=3, device="cpu", settings=QUICK
    )
    assert result.entries == 2 and result.confirmed == 1 and result.finetune.steps == 3
    changed = [k for k, v in head.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the object-score head must have learned"
    assert sorted(session.confirmed_frames[1]) == [PRESENT, *ABSENT]  # replayed


def test_replay_starts_where_a_confirmed_object_is_present(tmp_path):
    from napari_samed2.learn_now import confirmed_masks, replay_confirmed

    model = load_model(tiny_base(tmp_path / "tiny.safetensors"), device="cpu")
    volume, disk = _volume()
    session = PropagationSession(model, volume, axis=0)
    session.add_mask(2, 1, disk)
    session.correct(0, 1, np.zeros_like(disk))  # "absent" on a frame before the prompt
    masks = confirmed_masks(session)
    order = [result.frame for result in replay_confirmed(session, masks)]
    # forward from the present frame, then backward through frame 1 to the absent frame 0
    assert order == [2, 3, 4, 5, 1, 0]
    assert sorted(session.confirmed_frames[1]) == [0, 2]
