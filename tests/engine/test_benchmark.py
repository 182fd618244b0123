"""The benchmarks run in CI-sized mode (correctness only; no timing assertions)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_idle_check_refuses_a_busy_machine_and_lets_correctness_runs_through(capsys):
    idle = _script("idle")
    # max_load -1: always "busy"
    with pytest.raises(SystemExit, match=r"busy \(1-minute load average [0-9.]+ > -1"):
        idle.require_idle(max_load=-1.0, wait_s=0.0)
    # allowed: no wait at all (a worker of a checked timing, a CI correctness run)
    assert idle.require_idle(allow_busy=True, max_load=-1.0, wait_s=3600.0) >= 0.0
    assert "load average before timing" in capsys.readouterr().err


def test_benchmark_ci_mode_runs_and_sam2_mode_matches(tmp_path):
    module = _script("bench_propagation")
    report = module.main(["--ci", "--threads", "1", "--workdir", str(tmp_path)])
    (run,) = report["runs"]
    assert run["frames_compared"] == 6
    assert run["min_iou_sam2_mode_vs_predictor"] >= 0.999
    assert 0.0 < run["mask_coverage"] < 1.0
    for key in ("predictor_s", "sam2_mode_s", "selective_s", "repropagation_speedup_selective"):
        assert run[key] > 0
    # our defaults: the precision load_model picks here (tests pin the CPU default to fp32),
    # masks checked against fp32 selective on every frame
    assert run["default_precision"] == "fp32"
    assert run["min_iou_default_vs_fp32_selective"] == 1.0
    assert run["default_s"] > 0 and run["ratio_default"] > 0


@pytest.mark.slow
def test_reopen_benchmark_ci_mode_reads_the_cache_and_matches_the_predictor(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports bench_propagation
    module = _script("bench_reopen")
    report = module.main(
        ["--ci", "--size", "96", "--stacks", "2", "3", "--threads", "1", "--workdir", str(tmp_path)]
    )
    for frames in (2, 3):
        entry = report["stacks"][frames]
        assert entry["iou_ours_vs_predictor"] == 1.0 == entry["iou_ours_cold_vs_predictor"]
        rows = entry["rows"]
        assert rows["ours"]["encoded_images"] == 0  # reopened from the disk cache
        assert rows["ours-cold"]["encoded_images"] == 2 == rows["predictor"]["encoded_images"]
        assert all(row["first_frame_s"] > 0 for row in rows.values())
    assert report["hash_share_of_encoding"] > 0


def test_memory_attention_benchmark_runs_and_both_sides_agree():
    row = _script("bench_memory_attention").run(size=128, frames=3, repeats=1)
    assert row["max_abs_difference"] < 1e-4
    assert row["sam2_ms"] > 0 and row["kept_keys_ms"] > 0 and row["tokens_per_memory"] == 64


def test_demo_benchmark_runs_both_settings_at_the_same_quality(tmp_path):
    out = tmp_path / "demo.json"
    assert _script("bench_demo").main(["--repeats", "1", "--allow-busy", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["busy"] is True and report["runs"]["ends once"][0] > 0
    # on the demo volume, ending objects once keeps the masks (Dice 0.960 both ways)
    assert report["mean_dice"]["ends once"] >= 0.95
    assert abs(report["mean_dice"]["ends once"] - report["mean_dice"]["carried on"]) < 0.005
