"""The fine-tuning dock widget (opened through the manifest) and the headless learn-now API."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from qtpy.QtCore import QTimer

from napari_samed2 import synthetic
from napari_samed2.engine import PropagationSession
from napari_samed2.labelset import LabelSet, import_layer
from napari_samed2.learn_now import learn_now
from napari_samed2.model import Preprocessing, build_model, load_model, save_checkpoint
from napari_samed2.model import small_config as tiny_config
from napari_samed2.train.finetune import FinetuneSettings
from napari_samed2.ui.finetune_panel import DISPLAY_NAME, FinetunePanel

pytestmark = pytest.mark.gui
TIMEOUT_MS = 120_000


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAMED2_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def volume_set(path, frames=(3, 6, 9)) -> LabelSet:
    sample = synthetic.nuclei_volume(shape=(12, 64, 64), seed=1)
    labelset = LabelSet.create(path)
    import_layer(labelset, sample.image, sample.labels, image_name="volume", frames=list(frames))
    return labelset


def tiny_checkpoint(path):
    torch.manual_seed(0)
    config = tiny_config(image_size=128)
    net = build_model(config, temporal_adapter=True)
    prep = Preprocessing(128, None, None, 0.0)
    return save_checkpoint(
        path, net, config=config, temporal_adapter=True, preprocessing=prep, name="tiny"
    )


def test_panel_from_the_manifest_trains_in_a_worker_and_stop_keeps_the_best(
    make_napari_viewer, qtbot, tmp_path
):
    viewer = make_napari_viewer()
    _, panel = viewer.window.add_plugin_dock_widget("napari-samed2", DISPLAY_NAME)
    assert isinstance(panel, FinetunePanel)
    labelset = volume_set(tmp_path / "set")
    base = tiny_checkpoint(tmp_path / "tiny.safetensors")
    panel.labelset_edit.setText(str(labelset.path))
    panel.set_base(base)
    panel.holdout_spin.setValue(0.3)
    panel.out_edit.setText(str(tmp_path / "tuned.safetensors"))
    panel.steps = 500
    panel.settings = FinetuneSettings(
        lr=3e-3, eval_every=1, num_frames=3, objects_per_clip=2, warmup=1
    )
    reports = []
    panel.progressed.connect(reports.append)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(panel.worker is not None))
    timer.start(20)
    assert panel.start()
    assert not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    # the event loop runs while the worker trains: timer ticks and progress reports arrive
    qtbot.waitUntil(lambda: any(r.step >= 3 for r in reports), timeout=TIMEOUT_MS)
    assert sum(ticks) >= 3, "napari's event loop must keep running during training"
    assert panel.progress_bar.value() > 0 and "held-out Dice" in panel.status.text()
    with qtbot.waitSignal(panel.finished, timeout=TIMEOUT_MS) as done:
        panel.stop()
    timer.stop()
    result = done.args[0]
    assert not isinstance(result, BaseException), result
    assert result.stopped_by == "stop request" and 3 <= result.steps < 500
    history = dict(result.history)
    best = max(history, key=history.get)
    assert result.best_step == best and result.heldout_after == history[best]
    assert reports[-1].best_dice == pytest.approx(max(history.values()))
    # the written file holds the kept weights, and the panel lists the new model as a base
    from napari_samed2.train.finetune_card import state_sha256

    assert state_sha256(load_model(result.path, device="cpu").net) == state_sha256(result.model.net)
    assert panel.base_combo.findData(str(result.path)) >= 0
    qtbot.waitUntil(lambda: panel.use_button.isEnabled(), timeout=TIMEOUT_MS)
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()


def test_learn_now_api_changes_the_decoder_in_place_and_repropagates(
    tiny_model, small_volume, tmp_path
):
    model = copy.deepcopy(tiny_model)
    session = PropagationSession(model, small_volume)
    session.add_points(4, 1, [[20, 30]], [1])
    list(session.propagate())
    fix = np.zeros(small_volume.shape[1:], bool)
    fix[24:40, 24:40] = True
    session.correct(7, 1, fix)
    labelset = LabelSet.create(tmp_path / "set")
    for frame in (4, 7):
        labels = session.results[frame].masks[1].astype(np.uint8)
        source = {"kind": "layer", "name": "volume", "axis": 0, "frame": frame, "position": []}
        labelset.add(small_volume[frame], labels, source=source)
    other = {"kind": "layer", "name": "other image", "axis": 0, "frame": 0, "position": []}
    labelset.add(small_volume[0], np.zeros((64, 64), np.uint8), source=other)
    decoder = copy.deepcopy(model.net.sam_mask_decoder.state_dict())
    encoder = copy.deepcopy(model.net.image_encoder.state_dict())
    cached = len(session.cache)
    before = {f: session.results[f].masks[1].copy() for f in range(10)}
    settings = FinetuneSettings(num_frames=2, objects_per_clip=1, warmup=1, lr=1e-2)
    result = learn_now(
        session, model, labelset, source="volume", steps=3, seconds=None, settings=settings
    )
    assert result.entries == 2  # the other image's entry is not trained on
    assert result.finetune.steps == 3 and result.path.is_file()
    assert model.name == result.path.stem and model.source == result.path
    after = model.net.sam_mask_decoder.state_dict()
    assert any(not torch.equal(after[k], decoder[k]) for k in decoder)
    assert all(torch.equal(v, encoder[k]) for k, v in model.net.image_encoder.state_dict().items())
    assert session.net is model.net and len(session.cache) >= cached > 0
    assert result.frames == 10 and session.confirmed_frames == {1: [4, 7]}
    np.testing.assert_array_equal(session.results[7].masks[1], fix)  # the fix is kept
    changed = [f for f in range(10) if not np.array_equal(session.results[f].masks[1], before[f])]
    assert changed, "re-propagation with the new weights must change some frame"
