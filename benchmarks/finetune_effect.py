"""Fine-tuning's effect on one-click propagation, on volumes like real microscopy stacks
and on real images that ship inside registry packages.

A label set of a few complete slices is fine-tuned on for a time budget; both models then get
one click per object (on its largest slice not in the set), propagated both ways by the
engine. Prints (and with --json, writes) the volume Dice over the frames not in the set and
how far the propagated objects end from their true first and last slices, before and after.

Domains (``--domain``):
- ``tissue``: 5 consecutive complete slices of one `synthetic.tissue_volume`; scored on
  objects of *other* volumes of the same kind.
- ``mni``: 5 consecutive complete axial slices of the MNI152 brain template (real MRI, from
  nilearn's wheel; white and grey matter); scored on the other slices of the same volume.
- ``dsb``: a real fluorescence image of nuclei (from stardist's wheel) cut into 4 tiles; the
  set is one complete tile, scored with one click per nucleus on the other 3 (2-D, no
  propagation).

    python benchmarks/finetune_effect.py --minutes 5 --frames 5 --json out.json
    # one click, no fine-tuning, on a candidate model (the MNI domain scores every slice but
    # the 5 of the set, so the numbers compare with a fine-tuned run's "before")
    python benchmarks/finetune_effect.py --domain mni --base cand.safetensors --no-finetune
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_samed2 import synthetic
from napari_samed2.engine import PropagationSession
from napari_samed2.labelset import LabelSet, import_layer
from napari_samed2.model import DEFAULT_MODEL, load_model
from napari_samed2.train.finetune import FinetuneSettings, finetune
from napari_samed2.train.metrics import dice
from napari_samed2.train.prompts import centre_click

sys.path.insert(0, str(Path(__file__).parent))
import registry_data


def propagation_scores(
    model, image, labels, obj_ids, *, excluded=(), propagate=True, ends_once=None
) -> list[dict]:
    """One click per object on its largest slice (not one of ``excluded``), propagated both
    ways: Dice over the slices not ``excluded`` and the offsets of the predicted first and
    last slices from the true ones (None if nothing predicted). Without ``propagate``, the
    clicked slice alone is scored. The stack is a depth stack ("Z"): ``ends_once`` None takes
    the model profile's choice for it."""
    session = PropagationSession(model, image, axis=0, axis_kind="Z", ends_once=ends_once)
    scored = np.ones(labels.shape[0], bool)
    scored[list(excluded)] = False
    rows = []
    for obj_id in obj_ids:
        truth = labels == obj_id
        frame = int(np.argmax(np.where(scored, truth.sum(axis=(1, 2)), 0)))
        x, y = centre_click(truth[frame]).coords[0]
        session.reset(bank=True)
        session.add_points(frame, int(obj_id), [[float(y), float(x)]], [1])
        keep = scored.copy()
        if propagate:
            for _ in session.propagate("both"):
                pass
        else:
            keep[:] = False
            keep[frame] = True
        predicted = np.zeros_like(truth)
        for index, result in session.results.items():
            if obj_id in result.masks:
                predicted[index] = result.masks[obj_id]
        predicted[~keep] = False
        truth = truth & keep[:, None, None]
        areas = truth.sum(axis=(1, 2))
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


@dataclass
class Domain:
    """A label set's source (``image``, ``labels``, the complete ``frames`` it takes) and the
    stacks scored: (image, labels, object ids, frames not scored)."""

    image: np.ndarray
    labels: np.ndarray
    frames: list[int]
    tests: list[tuple[np.ndarray, np.ndarray, list[int], list[int]]]
    propagate: bool = True


def tissue_domain(shape, frames: int, spacing: int, objects: int, volumes: int) -> Domain:
    train = synthetic.tissue_volume(shape=shape, seed=100)
    first = shape[0] // 2 - (frames - 1) * spacing // 2
    tests = [synthetic.tissue_volume(shape=shape, seed=200 + i) for i in range(volumes)]
    return Domain(
        train.image,
        train.labels,
        [first + i * spacing for i in range(frames)],
        [
            (t.image, t.labels, pick_objects(t.labels, objects, seed=i), [])
            for i, t in enumerate(tests)
        ],
    )


def mni_domain(frames: int, spacing: int) -> Domain:
    """White and grey matter of each hemisphere: four objects (1, 2: white matter left and
    right; 3, 4: grey matter), so that the held-out split has one to keep."""
    image, tissue = registry_data.mni_brain(step=2)
    right = np.zeros(tissue.shape, bool)
    right[..., tissue.shape[2] // 2 :] = True
    labels = np.zeros(tissue.shape, np.uint8)
    for base, kind in ((1, registry_data.WHITE_MATTER), (3, registry_data.GREY_MATTER)):
        labels[(tissue == kind) & ~right] = base
        labels[(tissue == kind) & right] = base + 1
    first = int(0.55 * labels.shape[0]) - (frames - 1) * spacing // 2
    chosen = [first + i * spacing for i in range(frames)]
    return Domain(image, labels, chosen, [(image, labels, [1, 2, 3, 4], chosen)])


def dsb_domain() -> Domain:
    image, labels = registry_data.dsb_nuclei()
    half = image.shape[0] // 2
    tiles = [(slice(r, r + half), slice(c, c + half)) for r in (0, half) for c in (0, half)]
    image_tiles = np.stack([image[t] for t in tiles])
    label_tiles = np.stack([labels[t] for t in tiles])
    tests = []
    for k in range(1, 4):
        stack = label_tiles.copy()
        stack[np.arange(4) != k] = 0
        ids = [int(i) for i in np.unique(stack[stack > 0]) if (stack == i).sum() >= 30]
        tests.append((image_tiles, stack, ids, [0]))
    return Domain(image_tiles, label_tiles, [0], tests, propagate=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", choices=("tissue", "mni", "dsb"), default="tissue")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=None, help="a step budget instead")
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
    parser.add_argument("--num-frames", type=int, default=None, help="most frames per clip")
    parser.add_argument("--train", default="decoder")
    parser.add_argument(
        "--base", default=DEFAULT_MODEL, help="model to start from (name or checkpoint path)"
    )
    parser.add_argument(
        "--no-finetune", action="store_true", help="score the base model only (one click)"
    )
    parser.add_argument(
        "--compare-ends-once",
        action="store_true",
        help="also score both models with objects ending once switched off (the profile's "
        "choice for depth stacks is the main score)",
    )
    parser.add_argument("--work", type=Path, default=None, help="folder for the set and model")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split(","))
    work = args.work or Path(tempfile.mkdtemp(prefix="samed2-finetune-"))
    # the measured model is not one of the user's: keep it out of their list of models
    os.environ.setdefault("NAPARI_SAMED2_CACHE", str(work / "cache"))
    if args.domain == "tissue":
        domain = tissue_domain(shape, args.frames, args.spacing, args.objects, args.volumes)
    elif args.domain == "mni":
        domain = mni_domain(args.frames, args.spacing)
    else:
        domain = dsb_domain()
    frames = domain.frames
    labelset = LabelSet.create(work / "set")
    import_layer(labelset, domain.image, domain.labels, image_name="train", frames=frames)

    def scores(model, ends_once=None) -> list[dict]:
        return [
            row
            for image, labels, ids, excluded in domain.tests
            for row in propagation_scores(
                model, image, labels, ids, excluded=excluded, propagate=domain.propagate,
                ends_once=ends_once,
            )
        ]  # fmt: skip

    compare = args.compare_ends_once and domain.propagate
    started = time.perf_counter()
    base = load_model(args.base, device="cpu")
    before = scores(base)
    eval_seconds = time.perf_counter() - started
    without = {"before_without_ends_once": summarise(scores(base, False))} if compare else {}
    if args.no_finetune:
        report = {"domain": args.domain, "base": args.base, "before": summarise(before),
                  **without, "eval_seconds_per_model": round(eval_seconds, 1)}  # fmt: skip
        print(json.dumps(report, indent=1))
        if args.json:
            args.json.write_text(json.dumps({**report, "before_rows": before}, indent=1))
        return 0
    settings = FinetuneSettings(object_score_weight=args.object_score_weight)
    if args.lr:
        settings.lr = args.lr
    if args.end_clips is not None:
        settings.end_clips = args.end_clips
    if args.num_frames is not None:
        settings.num_frames = args.num_frames
    result = finetune(
        labelset,
        args.base,
        work / "tuned.safetensors",
        minutes=None if args.steps else args.minutes,
        steps=args.steps,
        device="cpu",
        train=args.train,
        settings=settings,
        progress=_progress,
    )
    tuned = load_model(result.path, device="cpu")
    after = scores(tuned)
    if compare:
        without["after_without_ends_once"] = summarise(scores(tuned, False))
    report = {
        "domain": args.domain,
        "base": args.base,
        "set": {"frames": frames, "entries": len(labelset), "shape": domain.image.shape},
        "finetune": {
            k: result.card[k] for k in ("steps", "best_step", "stopped_by", "wall_seconds")
        },
        "heldout_dice": result.card["heldout_dice"],
        "before": summarise(before),
        "after": summarise(after),
        **without,
        "eval_seconds_per_model": round(eval_seconds, 1),
    }
    report["before_rows"], report["after_rows"] = before, after
    print(json.dumps({k: v for k, v in report.items() if not k.endswith("_rows")}, indent=1))
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
