import numpy as np
import pytest
import tifffile

from napari_samed2.cli_prompts import parse_prompt
from napari_samed2.pipeline import Prompt
from napari_samed2.stack_files import read_stack, write_confidence_csv, write_labels


def test_parse_points_and_boxes():
    assert parse_prompt("point", "12,40,55") == Prompt("point", 12, 1, (40.0, 55.0))
    assert parse_prompt("negative", " 3, 4.5, 6 @ 2 ") == Prompt("negative", 3, 2, (4.5, 6.0))
    assert parse_prompt("box", "0,1,2,30,40@7") == Prompt("box", 0, 7, (1.0, 2.0, 30.0, 40.0))


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("point", "12,40", "needs 2 coordinates"),
        ("box", "1,2,3@1", "needs 4 coordinates"),
        ("point", "1.5,2,3", "integer frame"),
        ("point", "a,b,c", "cannot read"),
        ("point", "1,2,3@0", "start at 1"),
        ("circle", "1,2,3", "kind must be one of"),
    ],
)
def test_bad_prompts_name_the_value(kind, text, message):
    with pytest.raises(ValueError, match=message):
        parse_prompt(kind, text)


def test_stacks_round_trip_lazily(tmp_path):
    stack = np.arange(4 * 8 * 9, dtype=np.uint16).reshape(4, 8, 9)
    tifffile.imwrite(tmp_path / "s.tif", stack)
    np.save(tmp_path / "s.npy", stack)
    for name in ("s.tif", "s.npy"):
        lazy = read_stack(tmp_path / name)
        assert not isinstance(lazy, np.ndarray) or isinstance(lazy, np.memmap)
        assert lazy.shape == stack.shape
        assert np.array_equal(np.asarray(lazy[2]), stack[2])
    labels = (stack % 3).astype(np.int32)
    for name in ("l.tif", "l.npy"):
        write_labels(tmp_path / name, labels)
        assert np.array_equal(np.asarray(read_stack(tmp_path / name)[:]), labels)
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        read_stack(tmp_path / "nope.tif")
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"expected one of \.tif"):
        read_stack(tmp_path / "x.png")
    with pytest.raises(ValueError, match="use .tif"):
        write_labels(tmp_path / "l.png", np.zeros((2, 2), np.int32))


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "l.npy"
    write_labels(path, np.ones((2, 2), np.int32))
    with pytest.raises(ValueError):
        write_labels(path, np.array([object()]))  # np.save refuses objects without pickle
    assert np.array_equal(np.load(path), np.ones((2, 2), np.int32))
    assert not list(tmp_path.glob(".*.tmp"))


def test_confidence_csv(tmp_path):
    write_confidence_csv(tmp_path / "c.csv", [(0, 1, 0.9, 0.91, 3.2, True)])
    lines = (tmp_path / "c.csv").read_text().splitlines()
    assert lines[0].startswith("frame,object,confidence")
    assert lines[1] == "0,1,0.9000,0.9100,3.2000,1"
