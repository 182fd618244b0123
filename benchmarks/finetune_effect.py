"""Fine-tuning's effect on one-click propagation, on volumes like real microscopy stacks.

A label set of a few complete slices of one `synthetic.tissue_volume` is fine-tuned on for a
time budget; both models then get one click per object (on its largest slice) of *other*
volumes of the same kind, propagated both ways by the engine. Prints (and with --json,
writes) the volume Dice and how far the propagated objects end from their true first and
last slices, before and after.

    python benchmarks/finetune_effect.py --minutes 5 --frames 5 --json out.json
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
from napari_samed2.labelset import LabelSet, import_layer
from napari_samed2.model import DEFAULT_MODEL, load_model
from napari_samed2.train.finetune import FinetuneSettings, finetune
from napari_samed2.train.metrics import dice
from napari_samed2.train.prompts import centre_click


def propagation_scores(model, image, labels, obj_ids) -> list[dict]:
    """One click per object on its largest slice, propagated both ways: Dice and the offsets
    of the predicted first and last slices from the true ones (None if nothing predicted)."""
    session = PropagationSession(model, image, axis=0)
    rows = []
    for obj_id in obj_ids:
        truth = labels == obj_id
        areas = truth.sum(axis=(1, 2))
        frame = int(np.argmax(areas))
        x, y = centre_click(truth[frame]).coords[0]
        session.reset(bank=True)
        session.add_points(frame, int(obj_id), [[float(y), float(x)]], [1])
        for _ in session.propagate("both"):
            pass
        predicted = np.zeros_like(truth)
        for index, result in session.results.items():
            if obj_id in result.masks:
                predicted[index] = result.masks[obj_id]
        true_z = np.flatnonzero(areas)
        got_z = np.flatnonzero(predicted.any(axis=(1, 2)))
        rows.append(
            {
                "id": int(obj_id),
                "dice": dice(predicted, truth),
                "start": int(got_z[0] - true_z[0]) if got_z.size else None,
                "end": int(got_z[-1] - true_z[-1]) if got_z.size else None,
                "true_slices": int(true_z.size),
                "predicted_slices": int(got_z.size),
            }
        )
    session.close()
    return rows


def summarise(rows: list[dict]) -> dict:
    ends = [abs(r[k]) for r in rows for k in ("start", "end") if r[k] is not None]
    return {
        "objects": len(rows),
        "dice": float(np.mean([r["dice"] for r in rows])),
        "mean_end_error_slices": float(np.mean(ends)) if ends else None,
        "ends_within_1_slice": float(np.mean([e <= 1 for e in ends])) if ends else None,
        "predicted_over_true_slices": float(
            np.mean([r["predicted_slices"] / r["true_slices"] for r in rows])
        ),
    }


def pick_objects(labels: np.ndarray, count: int, seed: int) -> list[int]:
    """Objects wholly inside the stack (they start and end between its first and last slice)."""
    inside = []
    for obj_id in np.unique(labels[labels > 0]):
        z = np.flatnonzero((labels == obj_id).any(axis=(1, 2)))
        if z[0] > 0 and z[-1] < labels.shape[0] - 1:
            inside.append(int(obj_id))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(inside, min(count, len(inside)), replace=False))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--frames", type=int, default=5, help="complete slices in the set")
    parser.add_argument(
        "--spacing", type=int, default=1, help="slices between the set's slices (1: consecutive)"
    )
    parser.add_argument("--shape", default="32,128,128")
    parser.add_argument("--objects", type=int, default=40, help="objects scored per volume")
    parser.add_argument("--volumes", type=int, default=2, help="evaluation volumes")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--object-score-weight", type=float, default=None)
    parser.add_argument("--end-clips", type=float, default=None)
    parser.add_argument("--train", default="decoder")
    parser.add_argument("--work", type=Path, default=None, help="folder for the set and model")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split(","))
    work = args.work or Path(tempfile.mkdtemp(prefix="samed2-finetune-"))
    # the measured model is not one of the user's: keep it out of their list of models
    os.environ.setdefault("NAPARI_SAMED2_CACHE", str(work / "cache"))
    train_volume = synthetic.tissue_volume(shape=shape, seed=100)
    first = shape[0] // 2 - (args.frames - 1) * args.spacing // 2
    frames = [first + i * args.spacing for i in range(args.frames)]
    labelset = LabelSet.create(work / "set")
    import_layer(
        labelset, train_volume.image, train_volume.labels, image_name="train", frames=frames
    )
    tests = [synthetic.tissue_volume(shape=shape, seed=200 + i) for i in range(args.volumes)]
    chosen = [pick_objects(t.labels, args.objects, seed=i) for i, t in enumerate(tests)]

    def scores(model) -> list[dict]:
        return [
            row
            for test, ids in zip(tests, chosen, strict=True)
            for row in propagation_scores(model, test.image, test.labels, ids)
        ]

    started = time.perf_counter()
    before = scores(load_model(DEFAULT_MODEL, device="cpu"))
    eval_seconds = time.perf_counter() - started
    settings = FinetuneSettings(object_score_weight=args.object_score_weight)
    if args.lr:
        settings.lr = args.lr
    if args.end_clips is not None:
        settings.end_clips = args.end_clips
    result = finetune(
        labelset,
        DEFAULT_MODEL,
        work / "tuned.safetensors",
        minutes=args.minutes,
        device="cpu",
        train=args.train,
        settings=settings,
        progress=_progress,
    )
    after = scores(load_model(result.path, device="cpu"))
    report = {
        "set": {"frames": frames, "entries": len(labelset), "shape": shape},
        "finetune": {
            k: result.card[k] for k in ("steps", "best_step", "stopped_by", "wall_seconds")
        },
        "heldout_dice": result.card["heldout_dice"],
        "before": summarise(before),
        "after": summarise(after),
        "eval_seconds_per_model": round(eval_seconds, 1),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def _progress(report) -> None:
    print(
        f"step {report.step} {report.seconds:.0f} s loss {report.loss} "
        f"held-out {report.heldout_dice}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
