"""The demo's propagation speed (frames per second) with the embedded model, objects ending
once on the demo volume's depth axis (the nano profile's default) or not, in the precision
`load_model` picks on this machine (with ``--compare-precision``, in the other one too).

The demo's own volume, prompts and model (`napari_samed2.demo`), one process, fresh sessions
alternating between the two settings; medians of the repeats; the features are encoded in
each session (no on-disk cache), as the demo does on a fresh machine. Prints (and with --out
writes) frames per second, the ratio, and each setting's mean Dice (the speed must not cost
quality).

    python benchmarks/bench_demo.py --repeats 5 [--out demo.json]

Checks that the machine is idle first (`idle.require_idle`); ``--allow-busy`` only checks
that it runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from napari_samed2.atomic import write_text_atomic
from napari_samed2.demo import demo_prompts, demo_sample
from napari_samed2.engine import PropagationSession, SessionSettings
from napari_samed2.model import DEFAULT_MODEL, load_model
from napari_samed2.pipeline import segment_stack
from napari_samed2.train.metrics import dice

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle import require_idle

SETTINGS = {"ends once": True, "carried on": False}


def run_once(model, sample, prompts, truth_ids, ends_once: bool) -> tuple[float, float]:
    """Frames per second of the propagation (encoding included) and the mean Dice."""
    session = PropagationSession(
        model, sample.image, axis=0, axis_kind="Z", ends_once=ends_once,
        settings=SessionSettings(disk_cache_bytes=0),
    )  # fmt: skip
    started = time.perf_counter()
    labels = segment_stack(session, prompts, direction="both").labels
    fps = session.num_frames / (time.perf_counter() - started)
    session.close()
    scores = [dice(labels == obj, sample.labels == truth) for obj, truth in truth_ids.items()]
    return fps, float(np.mean(scores))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--allow-busy", action="store_true")
    parser.add_argument(
        "--compare-precision", action="store_true",
        help="also run the precision the default did not pick (fp32 or bf16)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    load = require_idle(args.allow_busy)
    model = load_model(args.model, device="cpu")
    models = {"": model}
    if args.compare_precision:  # the other precision too, in the same process, interleaved
        other = "bf16" if model.precision == "fp32" else "fp32"
        models[f" ({other})"] = load_model(args.model, device="cpu", precision=other)
    sample = demo_sample()
    prompts, truth_ids = demo_prompts(sample.labels)
    settings = {
        name + suffix: (each, ends_once)
        for suffix, each in models.items()
        for name, ends_once in SETTINGS.items()
    }
    for each in models.values():  # warm-up: allocations, kernels
        run_once(each, sample, prompts, truth_ids, True)
    fps = {name: [] for name in settings}
    quality = {}
    for _ in range(args.repeats):
        for name, (each, ends_once) in settings.items():
            frames_per_s, quality[name] = run_once(each, sample, prompts, truth_ids, ends_once)
            fps[name].append(frames_per_s)
    medians = {name: statistics.median(values) for name, values in fps.items()}
    other = next((suffix for suffix in models if suffix), None)  # " (bf16)" / " (fp32)"
    report = {
        "model": args.model,
        "precision": model.precision_text,
        "load_before": load,
        "busy": args.allow_busy,
        "repeats": args.repeats,
        "frames_per_s": {name: round(v, 1) for name, v in medians.items()},
        "runs": {name: [round(v, 1) for v in values] for name, values in fps.items()},
        "ratio_ends_once": round(medians["ends once"] / medians["carried on"], 3),
        "ratio_defaults_vs_other_precision": (
            round(medians["ends once"] / medians["ends once" + other], 3) if other else None
        ),
        "mean_dice": {name: round(v, 4) for name, v in quality.items()},
    }
    print(json.dumps(report, indent=1))
    if args.out:
        write_text_atomic(args.out, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
