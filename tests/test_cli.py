"""The `samed2` command, run in-process on real files with a net built here."""

import numpy as np
import pytest
import tifffile

from napari_samed2.cli import main
from napari_samed2.engine import PropagationSession
from napari_samed2.model import load_model
from napari_samed2.pipeline import Prompt, segment_stack


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


def test_a_depth_axis_kind_ends_objects_once_as_a_session_does(tmp_path):
    """A nucleus volume with a burst of bad slices: with ``--axis-kind Z`` the nano model's
    profile ends the object where its mask goes empty; ``--no-ends-once`` carries it on."""
    from napari_samed2.synthetic import nuclei_volume
    from napari_samed2.synthetic.degradation import corrupt_frames

    sample = corrupt_frames(nuclei_volume(shape=(16, 96, 96), seed=36), seed=36, burst=True)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, sample.image)
    args = ["propagate", str(path), "--model", "samed2-nano", "--device", "cpu"]
    args += ["--axis-kind", "Z", "--point", "2,65,48"]
    model = load_model("samed2-nano", "cpu", progressbar=False)
    prompts = [Prompt("point", 2, 1, (65, 48))]
    written = {}
    for name, extra in (("ends", []), ("carries", ["--no-ends-once"])):
        out = tmp_path / f"{name}.npy"
        assert main([*args, *extra, "--out", str(out)]) == 0
        written[name] = np.load(out)
    ends = PropagationSession(model, sample.image, axis_kind="Z")
    carries = PropagationSession(model, sample.image, axis_kind="Z", ends_once=False)
    assert ends.options.ends_once and not carries.options.ends_once
    assert np.array_equal(written["ends"], segment_stack(ends, prompts).labels)
    assert np.array_equal(written["carries"], segment_stack(carries, prompts).labels)
    assert not np.array_equal(written["ends"], written["carries"])  # the flag reached it


def test_an_unknown_axis_kind_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["propagate", str(tmp_path / "x.tif"), "--axis-kind", "Q", "--point", "0,1,1"])
    assert "--axis-kind: invalid choice: 'Q' (choose from 'T', 'Z')" in capsys.readouterr().err


# -- outputs never destroy data, and are checked before the run ----------------------------------


def _propagate_args(stack_path, checkpoint, out, *extra):
    return [
        "propagate",
        str(stack_path),
        "--model",
        str(checkpoint),
        "--point",
        "2,20,22",
        "--out",
        str(out),
        *extra,
    ]


def test_out_never_overwrites_the_input_even_with_force(tiny_checkpoint, tmp_path, capsys):
    volume = np.random.default_rng(1).normal(100, 10, (4, 48, 56)).astype(np.float32)
    path = tmp_path / "input.npy"
    np.save(path, volume)
    before = path.read_bytes()
    link = tmp_path / "link.npy"
    link.symlink_to(path)
    for out in (path, tmp_path / "." / "input.npy", link):
        code = main(_propagate_args(path, tiny_checkpoint, out, "--force"))
        err = capsys.readouterr().err
        assert code == 2
        assert "is the input" in err and str(out) in err
        assert path.read_bytes() == before
    # the confidence CSV may not be the input either
    code = main(
        _propagate_args(path, tiny_checkpoint, tmp_path / "l.npy", "--confidence", str(link))
    )
    assert code == 2 and "--confidence" in capsys.readouterr().err
    assert path.read_bytes() == before and not (tmp_path / "l.npy").exists()


def test_an_existing_output_needs_force(tiny_checkpoint, stack, tmp_path, capsys):
    path, _ = stack
    out, csv = tmp_path / "labels.npy", tmp_path / "conf.csv"
    out.write_bytes(b"an older result")
    # A model that cannot load: the refusal must come first, before any model or run.
    code = main(_propagate_args(path, "no-such-model", out))
    err = capsys.readouterr().err
    assert code == 2 and "already exists" in err and "--force" in err and str(out) in err
    assert "no-such-model" not in err
    assert out.read_bytes() == b"an older result"

    csv.write_text("older confidences")
    new = tmp_path / "new.npy"
    code = main(_propagate_args(path, "no-such-model", new, "--confidence", str(csv)))
    err = capsys.readouterr().err
    assert code == 2 and "--confidence" in err and "already exists" in err
    assert csv.read_text() == "older confidences" and not new.exists()

    assert main(_propagate_args(path, tiny_checkpoint, out, "--force")) == 0
    assert np.load(out).shape == (6, 48, 56)


def test_out_and_confidence_must_differ_and_formats_are_checked_first(
    tiny_checkpoint, stack, tmp_path, capsys
):
    path, _ = stack
    out = tmp_path / "labels.npy"
    code = main(_propagate_args(path, tiny_checkpoint, out, "--confidence", str(out)))
    assert code == 2 and "same file as --out" in capsys.readouterr().err
    code = main(_propagate_args(path, tiny_checkpoint, tmp_path / "labels.png"))
    assert code == 2 and "labels.png" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# -- object ids fit the label file ---------------------------------------------------------------


@pytest.mark.parametrize("obj_id", ["3000000000", "2147483648", "0", "-3"])
def test_object_ids_outside_the_label_dtype_are_refused_before_the_run(
    tiny_checkpoint, stack, tmp_path, capsys, obj_id
):
    path, _ = stack
    out = tmp_path / "labels.tif"
    code = main(
        [
            "propagate",
            str(path),
            "--model",
            str(tiny_checkpoint),
            "--point",
            f"2,20,22@{obj_id}",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"object id {int(obj_id)}" in err and "1..2147483647" in err
    assert "frame" not in err.split("error:")[0]  # no progress line: nothing ran
    assert not out.exists()


def test_the_largest_int32_id_is_written(tiny_checkpoint, stack, tmp_path):
    path, _ = stack
    out = tmp_path / "labels.npy"
    args = ["propagate", str(path), "--model", str(tiny_checkpoint), "--out", str(out)]
    assert main([*args, "--point", "2,20,22@2147483647"]) == 0
    labels = np.load(out)
    assert set(np.unique(labels)) == {0, 2147483647}


# -- stacks with a channel axis ------------------------------------------------------------------


@pytest.fixture(scope="module")
def czyx_stack(tmp_path_factory):
    rng = np.random.default_rng(2)
    channels = rng.normal(100, 10, (2, 5, 48, 56)).astype(np.float32)
    channels[0, :, 10:30, 12:34] += 200  # the object is in channel 0 only
    channels[1, :, 30:44, 30:50] += 200
    path = tmp_path_factory.mktemp("czyx") / "czyx.npy"
    np.save(path, channels)
    return path, channels


def test_a_czyx_stack_without_axis_and_channel_is_refused(
    tiny_checkpoint, czyx_stack, tmp_path, capsys
):
    path, _ = czyx_stack
    out = tmp_path / "labels.npy"
    for extra in ([], ["--axis", "1"], ["--channel", "0"]):
        code = main(_propagate_args(path, tiny_checkpoint, out, *extra))
        err = capsys.readouterr().err
        assert code == 2
        assert "(2, 5, 48, 56)" in err and "--axis" in err and "--channel" in err
        assert not out.exists()


def test_a_czyx_stack_propagates_one_channel_along_z(tiny_checkpoint, czyx_stack, tmp_path):
    path, channels = czyx_stack
    out = tmp_path / "labels.npy"
    assert main(_propagate_args(path, tiny_checkpoint, out, "--axis", "1", "--channel", "1")) == 0
    expected = segment_stack(
        PropagationSession(load_model(tiny_checkpoint), channels[1]),
        [Prompt("point", 2, 1, (20, 22))],
    ).labels
    labels = np.load(out)
    assert labels.shape == (5, 48, 56)  # Z frames, not the 2 channels
    assert np.array_equal(labels, expected)


def test_channel_on_a_plain_volume_and_out_of_range_values_are_refused(
    tiny_checkpoint, stack, czyx_stack, tmp_path, capsys
):
    out = tmp_path / "labels.npy"
    code = main(_propagate_args(stack[0], tiny_checkpoint, out, "--channel", "1"))
    assert code == 2 and "--channel 1" in capsys.readouterr().err
    code = main(
        _propagate_args(czyx_stack[0], tiny_checkpoint, out, "--axis", "1", "--channel", "2")
    )
    err = capsys.readouterr().err
    assert code == 2 and "--channel 2" in err and "0..1" in err
    assert not out.exists()
