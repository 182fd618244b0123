"""Training state and --init-from run no code: crafted configs are refused naming the key.

Each crafted config would create a marker file if hydra honoured it (``builtins.open``).
"""

import json

import pytest
import torch

from napari_samed2.cli import main
from napari_samed2.model import CheckpointError, UnsafeCheckpointError, nano_config, small_config
from napari_samed2.train.trainer import (
    CHECKPOINT_NAME,
    TrainSettings,
    export_weights,
    read_state,
    train,
)
from tests.crafted import nano_with, opens, write_checkpoint


def crafted_run(run_dir, marker, **settings_overrides):
    """A run folder whose ``last.pt`` records a config that would open ``marker``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = TrainSettings(**settings_overrides).to_dict()
    settings["config"] = nano_with("image_encoder.trunk.drop_path_rate", opens(marker))
    state = {"model": {}, "optimizer": {}, "step": 1, "wall_seconds": 0.0,
             "settings": json.dumps(settings)}  # fmt: skip
    torch.save(state, run_dir / CHECKPOINT_NAME)
    return run_dir


def test_export_of_a_crafted_run_is_refused(tmp_path):
    marker = tmp_path / "ran"
    run = crafted_run(tmp_path / "run", marker)
    with pytest.raises(UnsafeCheckpointError) as raised:
        export_weights(run, tmp_path / "out.safetensors")
    assert str(run / CHECKPOINT_NAME) in str(raised.value)
    assert "image_encoder.trunk.drop_path_rate._target_ is 'builtins.open'" in str(raised.value)
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_resuming_a_crafted_run_is_refused(tmp_path):
    marker = tmp_path / "ran"
    run = crafted_run(tmp_path / "run", marker, steps=2)
    with pytest.raises(UnsafeCheckpointError, match=r"last\.pt.*trunk\.drop_path_rate\._target_"):
        train(TrainSettings(steps=2), run, device="cpu", progress=False)
    assert not marker.exists()


def test_cli_train_export_of_a_crafted_run_is_refused(tmp_path, capsys):
    marker = tmp_path / "ran"
    run = crafted_run(tmp_path / "run", marker, steps=1)
    code = main(["train", "--run-dir", str(run), "--steps", "1", "--export",
                 str(tmp_path / "out.safetensors")])  # fmt: skip
    assert code == 2
    assert (
        "image_encoder.trunk.drop_path_rate._target_ is 'builtins.open'" in capsys.readouterr().err
    )
    assert not marker.exists()


def test_settings_config_from_the_api_is_checked(tmp_path):
    marker = tmp_path / "ran"
    settings = TrainSettings(steps=1, config=nano_with("memory_encoder", opens(marker)))
    with pytest.raises(UnsafeCheckpointError, match=r"memory_encoder\._target_"):
        train(settings, tmp_path / "run", device="cpu", progress=False)
    assert not marker.exists()


def test_cli_init_from_a_crafted_checkpoint_is_refused(tmp_path, capsys):
    marker = tmp_path / "ran"
    path = write_checkpoint(
        tmp_path / "colleague.safetensors", nano_with("memory_encoder", opens(marker))
    )
    code = main(["train", "--run-dir", str(tmp_path / "run"), "--steps", "1", "--frames", "2",
                 "--batch-size", "1", "--objects", "1", "--init-from", str(path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert str(path) in err and "memory_encoder._target_ is 'builtins.open'" in err
    assert not marker.exists()


def test_training_state_loads_weights_only_and_malformed_states_are_clear(tmp_path):
    settings = TrainSettings(steps=1, batch_size=1, num_frames=2, warmup=1,
                             config=small_config(image_size=128), mix={"nuclei": 1.0})  # fmt: skip
    train(settings, tmp_path / "run", device="cpu", progress=False)
    path = tmp_path / "run" / CHECKPOINT_NAME
    state = torch.load(path, weights_only=True)  # no pickled objects other than tensors
    assert state["step"] == 1
    assert read_state(path)[1] == settings

    broken = tmp_path / "broken.pt"
    torch.save({"model": {}, "step": 1}, broken)
    with pytest.raises(CheckpointError, match=r"broken\.pt.*missing \['optimizer'"):
        read_state(broken)
    stored = json.loads(state["settings"])
    stored["evil"] = 1
    torch.save({**state, "settings": json.dumps(stored)}, broken)
    with pytest.raises(CheckpointError, match=r"unknown settings \['evil'\]"):
        read_state(broken)
    torch.save({**state, "settings": "{not json"}, broken)
    with pytest.raises(CheckpointError, match="'settings' is not JSON"):
        read_state(broken)


def test_default_settings_config_is_the_nano_architecture():
    assert TrainSettings().config == nano_config()
