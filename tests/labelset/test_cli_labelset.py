"""`samed2 labelset create/import/export/info`, in-process through main(argv) and as a real
command in a subprocess; errors are one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_samed2.cli import main
from napari_samed2.cli_labelset import parse_frames
from napari_samed2.labelset import LabelSet

from .conftest import child_env


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 60000, (6, 16, 20), dtype=np.uint16)
    labels = np.zeros((6, 16, 20), np.uint16)
    labels[1, 2:6, 2:6] = 1
    labels[2, 2:7, 2:7] = 1
    labels[2, 9:14, 9:14] = 2
    labels[4, 0:2, 0:2] = 7
    tifffile.imwrite(tmp_path / "stack.tif", image)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    return tmp_path, image, labels


def _run(capsys, *argv):
    code = main(["labelset", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_import_info_export(files, capsys):
    folder, image, labels = files
    s = folder / "set"
    assert _run(capsys, "create", s, "--name", "cells")[:2] == (
        0,
        f"created label set 'cells' in {s}\n",
    )
    code, out, _ = _run(
        capsys, "import", s, "--image", folder / "stack.tif", "--labels", folder / "labels.tif"
    )
    assert code == 0
    assert out.splitlines() == [
        "skipped 3 frames without any label",
        f"imported 3 frames (4 object masks) into {s}: entries 1..3",
    ]
    code, out, _ = _run(
        capsys,
        "import",
        s,
        "--image",
        folder / "stack.tif",
        "--labels",
        folder / "labels.tif",
        "--frames",
        "0,2",
        "--axis",
        "0",
    )
    assert code == 0 and out.endswith("entries 4..5\n")
    entries = LabelSet.open(s).entries()
    assert [(e.frame, e.object_ids) for e in entries] == [
        (1, [1]),
        (2, [1, 2]),
        (4, [7]),
        (0, []),
        (2, [1, 2]),
    ]
    code, out, _ = _run(capsys, "info", s)
    assert code == 0
    lines = dict(
        line.split(None, 1) if not line.startswith("label set") else ("set", line)
        for line in out.splitlines()
    )
    assert lines["entries"] == "5 frames (5 complete)"
    assert lines["objects"] == "3 objects, 6 masks (6 imported)"
    assert lines["shapes"] == "16x20 uint16: 5"
    assert lines["source"] == f"file {(folder / 'stack.tif').resolve()}, axis 0: 5 frames"
    code, out, _ = _run(capsys, "info", s, "--json")
    assert json.loads(out)["entries"] == 5
    code, out, _ = _run(capsys, "export", s, folder / "out")
    assert code == 0 and out.startswith(f"wrote 5 image/mask pairs to {folder / 'out'}")
    np.testing.assert_array_equal(
        tifffile.imread(folder / "out" / "images" / "000005.tif"), image[2]
    )
    exported = tifffile.imread(folder / "out" / "masks" / "000005.tif")
    assert exported.dtype == np.uint16
    np.testing.assert_array_equal(exported, labels[2])
    code, out, _ = _run(capsys, "import", s, "--pairs", folder / "out")
    assert code == 0 and "imported 5 frames (6 object masks)" in out
    assert len(LabelSet.open(s)) == 10


def test_info_of_an_empty_set(tmp_path, capsys):
    _run(capsys, "create", tmp_path / "set")
    code, out, err = _run(capsys, "info", tmp_path / "set")
    assert code == 0 and err == ""
    assert "entries    0: the set is empty; add frames with `samed2 labelset import`" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["import", "{set}", "--image", "{dir}/stack.tif"], "--image needs --labels LABELS"),
        (["import", "{set}", "--pairs", "{dir}", "--axis", "1"], "--axis applies to --image, not"),
        (
            [
                "import",
                "{set}",
                "--image",
                "{dir}/stack.tif",
                "--labels",
                "{dir}/labels.tif",
                "--frames",
                "3,9",
            ],
            r"stack.tif: frames [9] are outside 0..5 along axis 0",
        ),
        (
            ["import", "{set}", "--image", "{dir}/stack.tif", "--labels", "{dir}/missing.tif"],
            "labels file '{dir}/missing.tif' does not exist",
        ),
        (["import", "{dir}/nowhere", "--pairs", "{dir}"], "no label set at '{dir}/nowhere'"),
        (["import", "{set}", "--pairs", "{dir}"], "no image/mask pairs in '{dir}'"),
        (["export", "{set}", "{dir}/out"], "has no entries to export"),
        (["create", "{set}"], "a label set already exists at '{set}'"),
    ],
)
def test_errors_are_one_line_naming_the_value(files, capsys, argv, message):
    folder = files[0]
    _run(capsys, "create", folder / "set")
    fill = {"set": folder / "set", "dir": folder}
    code, _, err = _run(capsys, *(arg.format(**fill) for arg in argv))
    assert code == 2
    assert err.startswith("samed2 labelset: error: ") and err.count("\n") == 1
    assert message.format(**fill) in err


def test_bad_frames_are_a_usage_error(files, capsys):
    folder = files[0]
    with pytest.raises(SystemExit) as exit_:
        main(["labelset", "import", str(folder), "--image", "a", "--labels", "b", "--frames", "x"])
    assert exit_.value.code == 2
    assert "argument --frames: 'x': expected frame numbers" in capsys.readouterr().err
    assert parse_frames("3,10-12, 17") == [3, 10, 11, 12, 17]


def test_the_installed_command_in_a_subprocess(files):
    folder = files[0]
    command = [sys.executable, "-m", "napari_samed2.cli", "labelset"]
    env = child_env()
    created = subprocess.run(
        [*command, "create", folder / "set"], capture_output=True, text=True, env=env
    )
    assert created.returncode == 0, created.stderr
    (folder / "set" / "labelset.json").write_text(
        '{"format": "napari-samed2-labelset", "version": 9}'
    )
    info = subprocess.run(
        [*command, "info", folder / "set"], capture_output=True, text=True, env=env
    )
    assert info.returncode == 2
    assert "Traceback" not in info.stderr
    assert "label-set format version 9; napari-samed2 0.1.0 reads version 1" in info.stderr
