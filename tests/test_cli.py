"""The `samed2` command, run in-process on real files with a net built here."""

import numpy as np
import pytest
import tifffile
import torch

from napari_samed2.cli import main
from napari_samed2.engine import PropagationSession
from napari_samed2.model import Preprocessing, build_model, load_model, save_checkpoint
from napari_samed2.pipeline import Prompt, segment_stack


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_config):
    torch.manual_seed(0)
    net = build_model(tiny_config, temporal_adapter=True)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    return save_checkpoint(
        path,
        net,
        config=tiny_config,
        temporal_adapter=True,
        preprocessing=Preprocessing(256, None, None, 0.0),
        name="tiny",
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    rng = np.random.default_rng(0)
    volume = rng.normal(100, 10, (6, 48, 56)).astype(np.float32)
    volume[:, 10:30, 12:34] += 200
    path = tmp_path_factory.mktemp("data") / "stack.tif"
    tifffile.imwrite(path, volume)
    return path, volume


def test_propagate_writes_what_the_engine_computes(tiny_checkpoint, stack, tmp_path, capsys):
    path, volume = stack
    out, csv = tmp_path / "labels.tif", tmp_path / "conf.csv"
    code = main(
        [
            "propagate",
            str(path),
            "--model",
            str(tiny_checkpoint),
            "--point",
            "2,20,22",
            "--box",
            "3,8,10,32,36@2",
            "--out",
            str(out),
            "--confidence",
            str(csv),
        ]
    )
    assert code == 0, capsys.readouterr().err
    labels = tifffile.imread(out)
    assert labels.shape == volume.shape and labels.dtype == np.int32
    assert set(np.unique(labels)) <= {0, 1, 2}

    session = PropagationSession(load_model(tiny_checkpoint), volume)
    prompts = [Prompt("point", 2, 1, (20, 22)), Prompt("box", 3, 2, (8, 10, 32, 36))]
    expected = segment_stack(session, prompts).labels
    assert np.array_equal(labels, expected)

    rows = csv.read_text().splitlines()[1:]
    assert len(rows) == volume.shape[0] * 2  # every frame, both objects
    frames = sorted({int(row.split(",")[0]) for row in rows})
    assert frames == list(range(volume.shape[0]))


def test_propagate_errors_are_one_line_and_nonzero(tiny_checkpoint, stack, tmp_path, capsys):
    path, _ = stack
    out = tmp_path / "labels.tif"
    assert main(["propagate", str(path), "--model", str(tiny_checkpoint), "--out", str(out)]) == 2
    assert "at least one --point or --box" in capsys.readouterr().err
    code = main(
        [
            "propagate",
            str(path),
            "--point",
            "99,1,1",
            "--model",
            str(tiny_checkpoint),
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "99" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    code = main(["propagate", str(path), "--point", "1,1,1", "--model", "nope", "--out", str(out)])
    assert code == 2 and "known model" in capsys.readouterr().err


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "samed2-nano (default)" in text and "sam2.1-base-plus" in text


def test_propagate_with_zoom_matches_a_zoomed_session(tiny_checkpoint, stack, tmp_path):
    path, volume = stack
    out = tmp_path / "zoomed.npy"
    args = ["propagate", str(path), "--model", str(tiny_checkpoint), "--zoom"]
    assert main([*args, "--point", "2,20,22", "--out", str(out)]) == 0
    session = PropagationSession(load_model(tiny_checkpoint), volume, zoom=True)
    expected = segment_stack(session, [Prompt("point", 2, 1, (20, 22))]).labels
    assert np.array_equal(np.load(out), expected)


def test_propagate_with_motion_matches_a_session_that_follows_motion(tmp_path):
    from napari_samed2.synthetic import moving_cells_timelapse

    sample = moving_cells_timelapse((12, 96, 96), seed=30001, events=False)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, sample.image)
    frame, row, col = 0, *map(int, np.argwhere(sample.labels[0] == 1).mean(0))
    out = tmp_path / "tracked.npy"
    args = ["propagate", str(path), "--model", "samed2-nano", "--device", "cpu", "--motion"]
    assert main([*args, "--point", f"{frame},{row},{col}", "--out", str(out)]) == 0
    model = load_model("samed2-nano", "cpu", progressbar=False)
    prompts = [Prompt("point", frame, 1, (row, col))]
    followed = segment_stack(PropagationSession(model, sample.image, motion=True), prompts).labels
    still = segment_stack(PropagationSession(model, sample.image), prompts).labels
    assert np.array_equal(np.load(out), followed)
    assert not np.array_equal(followed, still)  # the flag reached the session
