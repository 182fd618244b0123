"""`samed2 finetune` on real files: the new model is listed and loads wherever a name does."""

import json

import pytest
import tifffile

from napari_samed2.cli import main
from napari_samed2.model.download import file_sha256

from .finetune_helpers import tiny_base, volume_set


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAMED2_CACHE", str(tmp_path / "cache"))


def test_finetune_round_trip_on_the_command_line(tmp_path, capsys):
    base = tiny_base(tmp_path / "base.safetensors")
    checksum = file_sha256(base)
    labelset = volume_set(tmp_path / "set")
    out = tmp_path / "mine.safetensors"
    args = ["finetune", str(labelset.path), "--base", str(base), "--out", str(out)]
    assert main([*args, "--steps", "2", "--device", "cpu", "--holdout", "0.3"]) == 0
    printed = capsys.readouterr()
    assert "held-out Dice" in printed.out and f"wrote {out}" in printed.out
    assert "step 2/2" in printed.err
    assert file_sha256(base) == checksum
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["steps"] == 2 and card["base"]["sha256"] == checksum
    # listed at once by `samed2 models`
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "fine-tuned models" in listing and "mine" in listing and str(out) in listing
    # and usable as --model
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, labelset.entry(1).image()[None].repeat(3, axis=0))
    labels = tmp_path / "labels.tif"
    propagate = ["propagate", str(stack), "--model", str(out), "--point", "1,30,30"]
    assert main([*propagate, "--out", str(labels), "--device", "cpu"]) == 0
    assert tifffile.imread(labels).shape == (3, 64, 64)
    # a second run never overwrites: one line, exit code 2
    assert main([*args, "--steps", "1", "--device", "cpu"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_finetune_errors_are_one_line_and_exit_2(tmp_path, capsys):
    from napari_samed2.labelset import LabelSet

    LabelSet.create(tmp_path / "empty")
    out = str(tmp_path / "x.safetensors")
    assert main(["finetune", str(tmp_path / "empty"), "--base", "samed2-nano", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samed2 finetune: error: label set") and "is empty" in err
    with pytest.raises(SystemExit):
        main(["finetune", "s", "--base", "b", "--out", out, "--steps", "2", "--minutes", "1"])
    with pytest.raises(SystemExit):
        main(["finetune", "s", "--base", "b", "--out", out, "--holdout", "1.5"])
