"""First and later clicks on a 2-D image: our session beside sam2's own SAM2ImagePredictor.

Same network (sam2.1-tiny architecture at 1024 px, random weights), same 1024 x 1024 image,
same click, one process, CPU. Measured (medians of interleaved repeats): the first click
(encoding + decode) and a refinement click (decode only) for

- ``predictor``: ``SAM2ImagePredictor.set_image`` + ``predict``;
- ``ours``: ``PropagationSession(net, image)`` with default options (a SAM 2 network's
  profile: one decode, no flips);
- ``ours, flips``: ``flips=True`` (what every model got before profiles: four encodings).

Usage::

    python benchmarks/bench_first_click.py --repeats 3 [--out first_click.json]

Check that the machine is idle first (``uptime``: load average well under 1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sam2.sam2_image_predictor import SAM2ImagePredictor

from napari_samed2.engine import PropagationSession, SessionSettings
from napari_samed2.model import build_model, sam2_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle import require_idle

CLICK = (500, 420)  # row, col


def _image(size: int = 1024, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = rng.normal(70, 20, (size, size))
    image[(yy - CLICK[0]) ** 2 + (xx - CLICK[1]) ** 2 < 120**2] += 110
    return np.clip(image, 0, 255).astype(np.uint8)


def _predictor(net, image) -> tuple[float, float]:
    predictor = SAM2ImagePredictor(net)
    rgb = np.repeat(image[..., None], 3, axis=-1)
    point = np.array([[CLICK[1], CLICK[0]]], np.float32)  # sam2: (x, y)
    started = time.perf_counter()
    predictor.set_image(rgb)
    _, _, logits = predictor.predict(point_coords=point, point_labels=[1], multimask_output=False)
    first = time.perf_counter() - started
    started = time.perf_counter()
    predictor.predict(
        point_coords=np.array([[CLICK[1] + 60, CLICK[0]], [CLICK[1], CLICK[0]]], np.float32),
        point_labels=[0, 1],
        mask_input=logits,
        multimask_output=False,
    )
    return first, time.perf_counter() - started


def _ours(net, image, **options) -> tuple[float, float]:
    started = time.perf_counter()
    # no disk cache: every repeat encodes, as the predictor does
    session = PropagationSession(
        net, image, settings=SessionSettings(disk_cache_bytes=0), **options
    )
    session.add_points(0, 1, [CLICK], [1])
    first = time.perf_counter() - started
    started = time.perf_counter()
    session.add_points(0, 1, [(CLICK[0], CLICK[1] + 60)], [0], keep_previous=True)
    later = time.perf_counter() - started
    session.close()
    return first, later


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out")
    parser.add_argument(
        "--allow-busy", action="store_true", help="time even if the load average is high"
    )
    args = parser.parse_args()
    require_idle(args.allow_busy or getattr(args, "ci", False) or getattr(args, "worker", False))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build_model(sam2_config("sam2.1-tiny")).eval()
    image = _image()
    runs = {"predictor": [], "ours": [], "ours, flips": []}
    with torch.inference_mode():
        for _ in range(args.repeats):  # interleaved, so drifts in machine speed hit all alike
            runs["predictor"].append(_predictor(net, image))
            runs["ours"].append(_ours(net, image))
            runs["ours, flips"].append(_ours(net, image, flips=True))
    medians = {
        name: {
            "first_click_s": statistics.median(r[0] for r in rows),
            "later_click_ms": 1000 * statistics.median(r[1] for r in rows),
        }
        for name, rows in runs.items()
    }
    base = medians["predictor"]
    for values in medians.values():
        values["first_vs_predictor"] = values["first_click_s"] / base["first_click_s"]
        values["later_vs_predictor"] = values["later_click_ms"] / base["later_click_ms"]
    report = {"load_average": os.getloadavg(), "threads": args.threads, "results": medians}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
