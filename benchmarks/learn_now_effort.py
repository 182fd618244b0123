"""Annotation effort with and without "learn from my corrections": corrections per object to
reach volume Dice 0.9 on a `synthetic.tissue_volume`, with the embedded model.

Per object (wholly inside the stack), a simulated user clicks its centre on its largest slice
and propagates both ways; then, until the volume Dice reaches the target or the corrections
run out, gives the true mask of the worst frame (most wrong pixels, among frames not yet
confirmed) with ``session.correct`` and re-propagates up to the confirmed frames. With
learn-now, each corrected frame is also appended to a label set and `learn_now` fine-tunes
the decoder on it for ``--seconds``, swaps the weights in and re-propagates. Each object starts
from the embedded model (no learning carried over between objects).

    nice -n 19 python benchmarks/learn_now_effort.py --objects 4 --json effort.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_samed2 import synthetic
from napari_samed2.engine import PropagationSession
from napari_samed2.labelset import LabelSet, correction_segments
from napari_samed2.learn_now import learn_now
from napari_samed2.model import DEFAULT_MODEL, load_model
from napari_samed2.train.metrics import dice
from napari_samed2.train.prompts import centre_click


def predicted_volume(session, obj_id: int, shape) -> np.ndarray:
    volume = np.zeros(shape, bool)
    for frame, result in session.results.items():
        if obj_id in result.masks:
            volume[frame] = result.masks[obj_id]
    return volume


def repropagate(session, obj_id: int, frame: int) -> None:
    """Re-propagate from a corrected frame up to the confirmed frames (as the annotator does)."""
    frames = {obj_id: set(session.confirmed_frames[obj_id])}
    absent = {f for f in frames[obj_id] if not session.results[f].masks[obj_id].any()}
    for segment in correction_segments([frame], frames, "both", absent):
        for _ in session.propagate(segment.direction, segment.start, segment.stop):
            pass


def effort(
    image,
    truth,
    obj_id,
    *,
    learn: bool,
    target,
    max_corrections,
    seconds,
    steps,
    work,
    model_name,
    axis_kind="Z",
) -> dict:
    """Corrections needed for ``obj_id`` to reach ``target`` volume Dice (None: not reached)."""
    model = load_model(model_name, device="cpu")
    session = PropagationSession(model, image, axis=0, axis_kind=axis_kind)
    labelset = LabelSet.create(work / f"set-{obj_id}-{int(learn)}") if learn else None
    areas = truth.sum(axis=(1, 2))
    start = int(np.argmax(areas))
    x, y = centre_click(truth[start]).coords[0]
    session.add_points(start, obj_id, [[float(y), float(x)]], [1])
    for _ in session.propagate("both"):
        pass
    trace = [dice(predicted_volume(session, obj_id, truth.shape), truth)]
    learn_seconds = 0.0
    failures: list[str] = []
    while trace[-1] < target and len(trace) <= max_corrections:
        predicted = predicted_volume(session, obj_id, truth.shape)
        wrong = (predicted ^ truth).sum(axis=(1, 2)).astype(float)
        confirmed = set(session.confirmed_frames.get(obj_id, []))
        wrong[list(confirmed)] = -1
        frame = int(np.argmax(wrong))
        session.correct(frame, obj_id, truth[frame])
        if learn:
            labels = truth[frame].astype(np.uint16) * obj_id
            source = {"kind": "layer", "name": "volume", "axis": 0, "frame": frame, "position": []}
            labelset.add(image[frame], labels, complete=True, source=source)
            began = time.perf_counter()
            try:
                learn_now(
                    session, model, labelset, source="volume", seconds=seconds, steps=steps,
                    device="cpu",
                )  # fmt: skip
            except ValueError as error:  # FinetuneDataError: nothing to learn from (named)
                failures.append(f"correction {len(trace)}: {error}")
                repropagate(session, obj_id, frame)
            learn_seconds += time.perf_counter() - began
        else:
            repropagate(session, obj_id, frame)
        trace.append(dice(predicted_volume(session, obj_id, truth.shape), truth))
    session.close()
    reached = trace[-1] >= target
    return {
        "corrections": len(trace) - 1 if reached else None,
        "dice_trace": [round(float(d), 4) for d in trace],
        "learn_seconds": round(learn_seconds, 1),
        "learn_failures": failures,
        "true_slices": int((areas > 0).sum()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="32,128,128")
    parser.add_argument("--seed", type=int, default=300)
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--max-corrections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="learn-now budget")
    parser.add_argument("--steps", type=int, default=None, help="learn-now steps (first wins)")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="where each object starts (a name or a file)"
    )
    parser.add_argument("--arms", default="plain,learn", help="plain, learn or both")
    parser.add_argument(
        "--axis-kind", default="Z", choices=["Z", "T", "none"],
        help="what the stack's axis is (Z: depth, the annotator's choice for a volume; picks "
        "the model profile's defaults, e.g. objects end once); none: unknown",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="samed2-learn-now-"))
    os.environ.setdefault("NAPARI_SAMED2_CACHE", str(work / "cache"))  # not the user's list
    shape = tuple(int(v) for v in args.shape.split(","))
    sample = synthetic.tissue_volume(shape=shape, seed=args.seed)
    inside = []
    for obj_id in np.unique(sample.labels[sample.labels > 0]):
        z = np.flatnonzero((sample.labels == obj_id).any(axis=(1, 2)))
        if z[0] > 0 and z[-1] < shape[0] - 1:
            inside.append(int(obj_id))
    rng = np.random.default_rng(args.seed)
    chosen = sorted(int(i) for i in rng.choice(inside, min(args.objects, len(inside)), False))
    rows = []
    for obj_id in chosen:
        truth = sample.labels == obj_id
        row = {"id": obj_id}
        for learn in [arm == "learn" for arm in args.arms.split(",")]:
            began = time.perf_counter()
            row["learn" if learn else "plain"] = effort(
                sample.image, truth, obj_id, learn=learn, target=args.target,
                max_corrections=args.max_corrections, seconds=args.seconds, steps=args.steps,
                work=work, model_name=args.model,
                axis_kind=None if args.axis_kind == "none" else args.axis_kind,
            )  # fmt: skip
            row["learn" if learn else "plain"]["wall_seconds"] = round(
                time.perf_counter() - began, 1
            )
            print(obj_id, "learn" if learn else "plain", row["learn" if learn else "plain"])
        rows.append(row)

    def mean_corrections(arm: str) -> tuple[float, int]:
        counts = [r[arm]["corrections"] for r in rows]
        capped = [c if c is not None else args.max_corrections + 1 for c in counts]
        return float(np.mean(capped)), sum(c is None for c in counts)

    report = {
        "model": str(args.model),
        "learn_steps": args.steps,
        "axis_kind": args.axis_kind,
        "volume": {"kind": "tissue_volume", "shape": shape, "seed": args.seed},
        "target_dice": args.target,
        "max_corrections": args.max_corrections,
        "learn_seconds": args.seconds,
        "objects": rows,
        "summary": {
            arm: dict(zip(("mean_corrections", "not_reached"), mean_corrections(arm), strict=True))
            for arm in args.arms.split(",")
        },
    }
    print(json.dumps(report["summary"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
