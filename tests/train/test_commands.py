"""`samed2 train` options: the data mix reaches the run's settings; bad mixes are named."""

import argparse
import json

import pytest
import torch

from napari_samed2.cli import main
from napari_samed2.train.commands import parse_mix


def test_parse_mix_reads_kinds_and_weights():
    assert parse_mix("nuclei=0.3, cells=0.2,timelapse=0") == {
        "nuclei": 0.3,
        "cells": 0.2,
        "timelapse": 0.0,
    }


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("nucleus=1", "'nucleus'"),
        ("nuclei=lots", "'lots'"),
        ("nuclei=-1", "-1.0"),
        ("nuclei=nan", "nan"),
        ("nuclei=0,cells=0", "no positive weight"),
    ],
)
def test_parse_mix_names_what_is_wrong(text, named):
    with pytest.raises(argparse.ArgumentTypeError, match=named):
        parse_mix(text)


def test_train_command_uses_the_mix(tmp_path):
    threads = torch.get_num_threads()
    run_dir = tmp_path / "run"
    try:
        code = main(
            ["train", "--run-dir", str(run_dir), "--steps", "1", "--batch-size", "1",
             "--frames", "2", "--objects", "1", "--mix", "cells=1", "--threads", "1",
             "--carry-mask", "--carry-drop", "0.4", "--event-focus", "0.25",
             "--end-focus", "0.5", "--score-weight", "2.5"]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    state = torch.load(run_dir / "last.pt", weights_only=True)
    settings = json.loads(state["settings"])
    assert settings["mix"] == {"cells": 1.0}
    assert settings["carry_mask"] is True and settings["carry_drop"] == 0.4
    assert settings["event_focus"] == 0.25
    assert settings["end_focus"] == 0.5 and settings["object_score_weight"] == 2.5


@pytest.mark.parametrize("flag", ["--carry-drop", "--event-focus", "--end-focus"])
def test_train_command_refuses_a_fraction_outside_0_1(tmp_path, capsys, flag):
    code = main(["train", "--run-dir", str(tmp_path), flag, "1.5"])
    assert code == 2
    assert f"{flag} (1.5) must be in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "last.pt").exists()


def test_train_command_refuses_a_negative_score_weight(tmp_path, capsys):
    assert main(["train", "--run-dir", str(tmp_path), "--score-weight", "-1"]) == 2
    assert "--score-weight (-1.0) must be a number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "last.pt").exists()
