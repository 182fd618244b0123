"""The benchmarks run in CI-sized mode (correctness only; no timing assertions)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "bench_propagation.py"
REOPEN = BENCHMARK.with_name("bench_reopen.py")


def test_benchmark_ci_mode_runs_and_sam2_mode_matches(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_propagation", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--ci", "--threads", "1", "--workdir", str(tmp_path)])
    (run,) = report["runs"]
    assert run["frames_compared"] == 6
    assert run["min_iou_sam2_mode_vs_predictor"] >= 0.999
    assert 0.0 < run["mask_coverage"] < 1.0
    for key in ("predictor_s", "sam2_mode_s", "selective_s", "repropagation_speedup_selective"):
        assert run[key] > 0


@pytest.mark.slow
def test_reopen_benchmark_ci_mode_reads_the_cache_and_matches_the_predictor(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REOPEN.parent))  # it imports bench_propagation
    spec = importlib.util.spec_from_file_location("bench_reopen", REOPEN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
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
