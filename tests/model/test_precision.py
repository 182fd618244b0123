"""precision="auto": measured once per machine and architecture, remembered, bf16 only when it
is faster by a margin and keeps the masks; fp32 stays the exact default on CPU."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from napari_samed2.model import (
    DEFAULT_PRECISION,
    UnsupportedPrecisionError,
    build_model,
    check_precision,
    load_model,
    requested_precision,
    small_config,
)
from napari_samed2.model import precision as auto
from napari_samed2.model.download import CACHE_ENV
from napari_samed2.model.registry import Preprocessing

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    return build_model(small_config()).eval()


@pytest.fixture
def measured(monkeypatch):
    """Stand-in measurements: ``timings`` (fp32 ms, bf16 ms) and ``iou``; counts the calls."""
    state = {"timings": (100.0, 50.0), "iou": 0.995, "timed": 0, "checked": 0}

    def time_frames(net, image, device):
        state["timed"] += 1
        return state["timings"]

    def mask_agreement(net, image, clicks, device, preprocessing):
        state["checked"] += 1
        return state["iou"]

    monkeypatch.setattr(auto, "_time_frames", time_frames)
    monkeypatch.setattr(auto, "mask_agreement", mask_agreement)
    return state


def _choose(net, tmp_path, config=None):
    return auto.choose(net, CPU, config or small_config(), Preprocessing(256), directory=tmp_path)


@pytest.mark.parametrize(
    ("timings", "iou", "expected", "checked"),
    [
        ((100.0, 50.0), 0.995, "bf16", 1),  # 2x faster, same masks
        ((100.0, 50.0), 0.97, "fp32", 1),  # faster, but masks differ
        ((100.0, 95.0), 0.999, "fp32", 0),  # 1.05x: not worth it (masks not even checked)
        ((100.0, 200.0), 0.999, "fp32", 0),  # no bf16 units: slower
    ],
)
def test_bf16_only_when_faster_by_the_margin_and_masks_agree(
    small_net, tmp_path, measured, timings, iou, expected, checked
):
    measured.update(timings=timings, iou=iou)
    choice = _choose(small_net, tmp_path)
    assert choice.precision == expected and not choice.from_cache
    assert choice.speedup == pytest.approx(timings[0] / timings[1])
    assert measured["checked"] == checked
    assert "auto: bf16" in choice.describe()


def test_the_choice_is_remembered_per_architecture_and_weights(small_net, tmp_path, measured):
    first = _choose(small_net, tmp_path)
    again = _choose(small_net, tmp_path)
    assert (first.precision, again.precision, again.from_cache) == ("bf16", "bf16", True)
    assert (measured["timed"], measured["checked"]) == (1, 1)

    # other weights of the same architecture: timings are reused, the masks checked again
    torch.manual_seed(1)
    other = build_model(small_config()).eval()
    _choose(other, tmp_path)
    assert (measured["timed"], measured["checked"]) == (1, 2)

    # another architecture is measured on its own
    wider = small_config(memory_ffn=256)
    torch.manual_seed(0)
    _choose(build_model(wider).eval(), tmp_path, wider)
    assert measured["timed"] == 2
    records = json.loads((tmp_path / auto.CALIBRATION_FILE).read_text())["calibrations"]
    assert len(records) == 2
    assert all("cpu |" in key and f"torch {torch.__version__}" in key for key in records)


def test_a_corrupt_file_is_reported_and_measured_again(small_net, tmp_path, measured, caplog):
    path = tmp_path / auto.CALIBRATION_FILE
    for content in ("{not json", '{"version": 2, "calibrations": {"k": {"fp32_ms": "x"}}}'):
        path.write_text(content)
        with caplog.at_level(logging.WARNING, logger="napari_samed2.model.precision"):
            choice = _choose(small_net, tmp_path)
        assert "unreadable" in caplog.text and "measuring again" in caplog.text
        assert choice.precision == "bf16" and not choice.from_cache
        caplog.clear()
        assert _choose(small_net, tmp_path).from_cache  # rewritten, readable
    assert measured["timed"] == 2


def test_calibrations_by_an_earlier_method_are_measured_again_quietly(
    small_net, tmp_path, measured, caplog
):
    """Version 1 files timed encoder passes only, which misjudged small networks."""
    path = tmp_path / auto.CALIBRATION_FILE
    key = auto.calibration_key(CPU, small_config(), int(small_net.image_size))
    old = {"fp32_ms": 100.0, "bf16_ms": 10.0, "masks": {}}  # would say bf16 at once
    path.write_text(json.dumps({"version": 1, "calibrations": {key: old}}))
    measured.update(timings=(100.0, 200.0))
    with caplog.at_level(logging.INFO, logger="napari_samed2.model.precision"):
        choice = _choose(small_net, tmp_path)
    assert choice.precision == "fp32" and not choice.from_cache and measured["timed"] == 1
    assert "earlier method" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert json.loads(path.read_text())["version"] == auto.FILE_VERSION


def test_the_frame_timing_runs_memory_attention_on_a_full_memory(small_net):
    """No stand-ins: a tracked frame attends to num_maskmem memories (the calibration's
    unit of work, not the encoder alone)."""
    memory = auto._full_memory(small_net, torch.zeros(1, 3, 256, 256), CPU)
    outputs = memory.output_dict
    assert len(outputs["cond_frame_outputs"]) == 1
    assert len(outputs["non_cond_frame_outputs"]) == small_net.num_maskmem - 1
    assert memory.num_frames == small_net.num_maskmem + 1
    fp32_ms, bf16_ms = auto._time_frames(small_net, torch.zeros(1, 3, 256, 256), CPU)
    assert fp32_ms > 0 and bf16_ms > 0


def test_slow_frames_are_measured_by_their_warm_up_pair(small_net, monkeypatch):
    """Past the time budget (a large model on a CPU) no further pair is timed."""
    from napari_samed2.model import sam2_step

    passes = []

    original = sam2_step.encode_images

    def counting(net, images):
        passes.append(torch.is_autocast_enabled("cpu"))
        return original(net, images)

    monkeypatch.setattr(sam2_step, "encode_images", counting)
    monkeypatch.setattr(auto, "TIME_BUDGET_S", 0.0)
    fp32_ms, bf16_ms = auto._time_frames(small_net, torch.zeros(1, 3, 256, 256), CPU)
    # the memory's encoding, then one fp32 and one bf16 frame: nothing more
    assert passes == [False, False, True] and fp32_ms > 0 and bf16_ms > 0


def test_a_real_calibration_of_a_small_net(small_net, tmp_path):
    """No stand-ins: tracked frames are timed in both precisions and the masks compared."""
    choice = _choose(small_net, tmp_path)
    assert choice.precision in ("fp32", "bf16")
    assert choice.fp32_ms > 0 and choice.bf16_ms > 0
    faster = choice.bf16_ms * auto.SPEEDUP_NEEDED <= choice.fp32_ms
    assert (choice.min_iou is not None) == faster
    image, clicks = auto.calibration_image(256, Preprocessing(256))
    assert image.shape == (1, 3, 256, 256) and len(clicks) == auto.CLICKS
    iou = auto.mask_agreement(small_net, image, clicks, CPU, Preprocessing(256))
    assert 0.0 <= iou <= 1.0


def test_the_nano_models_bf16_masks_match_fp32():
    """The quality half of the check on the embedded model (slow on CPUs without bf16 units:
    that only changes the speed, not the masks)."""
    model = load_model("samed2-nano", device="cpu", progressbar=False)
    image, clicks = auto.calibration_image(model.image_size, model.preprocessing)
    iou = auto.mask_agreement(model.net, image, clicks, CPU, model.preprocessing)
    assert iou >= auto.MIN_MASK_IOU


def test_load_model_records_the_precision(monkeypatch, tmp_path, measured):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    chosen = load_model("samed2-nano", device="cpu", precision="auto", progressbar=False)
    assert chosen.precision == "bf16" and chosen.dtype == torch.bfloat16
    assert chosen.calibration is not None and chosen.precision_text.startswith("bf16 (auto: bf16")
    assert (tmp_path / auto.CALIBRATION_FILE).is_file()
    exact = load_model("samed2-nano", device="cpu", precision="fp32", progressbar=False)
    assert (exact.precision, exact.precision_text, exact.calibration) == ("fp32", "fp32", None)
    assert measured["timed"] == 1  # only "auto" measures


def test_the_cpu_default_is_auto(monkeypatch, tmp_path, measured):
    monkeypatch.setitem(DEFAULT_PRECISION, "cpu", "auto")  # tests/conftest.py pins fp32
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    default = load_model("samed2-nano", device="cpu", progressbar=False)
    assert default.calibration is not None and default.calibration.from_cache is False
    assert default.precision == "bf16" and measured["timed"] == 1


def test_precision_values():
    for value in (None, "auto", "fp32", "bf16"):
        check_precision(value)
    with pytest.raises(UnsupportedPrecisionError, match="'fp16'"):
        check_precision("fp16")
    monkeypatch = pytest.MonkeyPatch()
    with monkeypatch.context() as patch:
        patch.setitem(DEFAULT_PRECISION, "cpu", "auto")
        assert requested_precision(CPU) == "auto"
    assert requested_precision(torch.device("cuda")) == "bf16"
    assert requested_precision(torch.device("mps")) == "fp32"
    assert requested_precision(CPU, "fp32") == "fp32"
