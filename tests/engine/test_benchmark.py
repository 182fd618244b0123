"""The propagation benchmark runs in CI-sized mode (correctness only; no timing assertions)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "bench_propagation.py"


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
