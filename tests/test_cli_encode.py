"""``samed2 encode``: a stack's features precomputed into the disk cache, then used by
``samed2 propagate``; options checked before the weights load."""

import numpy as np
import pytest
import tifffile

import napari_samed2.engine.features as features_module
import napari_samed2.model as model_module
from napari_samed2.cli import main


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    rng = np.random.default_rng(0)
    volume = rng.normal(100, 10, (5, 48, 56)).astype(np.float32)
    volume[:, 10:30, 12:34] += 200
    path = tmp_path_factory.mktemp("data") / "stack.tif"
    tifffile.imwrite(path, volume)
    return path


@pytest.fixture
def encoded_images(monkeypatch):
    count = {"images": 0}
    original = features_module.encode_images

    def counting(net, images):
        count["images"] += images.shape[0]
        return original(net, images)

    monkeypatch.setattr(features_module, "encode_images", counting)
    return count


def test_encode_then_propagate_runs_no_encoder(
    tiny_checkpoint, stack, tmp_path, capsys, encoded_images
):
    assert main(["encode", str(stack), "--model", str(tiny_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "5 frames: 5 encoded, 0 already cached" in out
    assert encoded_images["images"] == 5

    assert main(["encode", str(stack), "--model", str(tiny_checkpoint)]) == 0
    assert "5 frames: 0 encoded, 5 already cached; 0.0 MiB written" in capsys.readouterr().out
    assert encoded_images["images"] == 5

    prompt = ["--point", "2,20,22", "--model", str(tiny_checkpoint)]
    cached, fresh = tmp_path / "cached.tif", tmp_path / "fresh.tif"
    assert main(["propagate", str(stack), *prompt, "--out", str(cached)]) == 0
    assert encoded_images["images"] == 5  # every frame from the cache
    assert main(["propagate", str(stack), *prompt, "--out", str(fresh), "--no-disk-cache"]) == 0
    assert encoded_images["images"] == 10
    labels = tifffile.imread(cached)
    assert np.array_equal(labels, tifffile.imread(fresh)) and labels.any()


def test_a_bound_too_small_for_the_stack_is_an_error(tiny_checkpoint, stack, capsys):
    code = main(["encode", str(stack), "--model", str(tiny_checkpoint), "--cache-gib", "0.000003"])
    err = capsys.readouterr().err
    assert code == 2
    assert "warning: this stack's features need about" in err
    assert "frames stayed in the cache" in err and "raise it with --cache-gib" in err


@pytest.fixture
def no_weights(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("weights loaded before the options were checked")

    monkeypatch.setattr(model_module, "load_model", refuse)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--precision", "fp64"], "precision 'fp64' is not supported; expected one of"),
        (["--axis", "2"], "axis 2 is a row/column axis"),
        (["--channel", "1"], "--channel 1 given, but the input"),
    ],
)
def test_bad_options_fail_before_the_weights_load(stack, capsys, no_weights, extra, message):
    assert main(["encode", str(stack), "--model", "sam2.1-large", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samed2 encode: error: ") and message in err


def test_a_missing_stack_or_a_file_as_cache_folder_fail_clearly(
    stack, tmp_path, capsys, no_weights, monkeypatch
):
    assert main(["encode", str(tmp_path / "missing.tif"), "--model", "sam2.1-large"]) == 2
    assert "missing.tif' does not exist" in capsys.readouterr().err
    (tmp_path / "taken").write_text("x")
    monkeypatch.setenv("NAPARI_SAMED2_FEATURES", str(tmp_path / "taken"))
    assert main(["encode", str(stack), "--model", "sam2.1-large"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("bound", ["0", "-1", "lots", "inf"])
def test_a_bad_cache_bound_is_refused_by_the_parser(stack, capsys, bound):
    with pytest.raises(SystemExit) as exit_info:
        main(["encode", str(stack), "--cache-gib", bound])
    assert exit_info.value.code == 2
    assert "--cache-gib" in capsys.readouterr().err
