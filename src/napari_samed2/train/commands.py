"""Command-line entry points for training and evaluation (`samed2 train`, `samed2 evaluate`).

`cli.py` adds these subcommands with `add_train_parser` / `add_evaluate_parser`; the module also
runs on its own: ``python -m napari_samed2.train.commands train ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli_logging import add_verbosity_option, log_to_stderr
from ..cli_model import add_precision_option


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``train``: train a network on synthetic clips (resumable) and export safetensors."""
    from ..model.registry import DEFAULT_MODEL

    parser = subparsers.add_parser(
        "train",
        help="train a SAMed-2 network on synthetic clips (resumable)",
        description="Train (or resume) a network on synthetic microscopy/MRI-like clips. "
        "Checkpoints and a JSON-lines log go to RUN_DIR as training goes.",
    )
    parser.add_argument("--run-dir", required=True, type=Path, help="folder for last.pt/log.jsonl")
    parser.add_argument("--steps", type=int, default=1400)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--frames", type=int, default=4, help="frames per clip (even)")
    parser.add_argument("--objects", type=int, default=8, help="objects drawn per clip")
    parser.add_argument(
        "--tracked", type=int, default=2, help="objects tracked through each clip (0: all)"
    )
    parser.add_argument(
        "--no-click-task",
        action="store_true",
        help="skip SAM's image task (every object prompted on every frame, decoder only)",
    )
    parser.add_argument(
        "--click-seed",
        action="store_true",
        help="also draw clicks and boxes into the mask prompt (the nano model's recipe)",
    )
    parser.add_argument(
        "--carry-mask",
        action="store_true",
        help="give tracked frames the previous frame's mask as mask prompt (nano's recipe)",
    )
    parser.add_argument(
        "--focal-weight", type=float, default=20.0, help="focal loss weight (SAM2: 20)"
    )
    parser.add_argument("--dice-weight", type=float, default=1.0, help="dice loss weight (SAM2: 1)")
    parser.add_argument(
        "--init-from",
        default=None,
        help="start from these weights (registry name or checkpoint) instead of random ones",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    parser.add_argument(
        "--carry-drop",
        type=float,
        default=0.1,
        help="with --carry-mask: fraction of tracked frames trained without the carried mask, "
        "so the memory must find the object (default 0.1)",
    )
    parser.add_argument(
        "--event-focus",
        type=float,
        default=0.0,
        help="fraction of time-lapse clips chosen around a division or an entering cell, with "
        "those cells tracked (default 0)",
    )
    parser.add_argument(
        "--end-focus",
        type=float,
        default=0.0,
        help="fraction of volume clips that run past the end of a tracked object, so the "
        "object score learns where objects end (default 0)",
    )
    parser.add_argument(
        "--score-weight",
        type=float,
        default=1.0,
        help="weight of the object-score (present/absent) loss (SAM2: 1)",
    )
    parser.add_argument(
        "--mix",
        type=parse_mix,
        default=None,
        help="data kinds and their relative frequencies, e.g. nuclei=0.3,cells=0.2 "
        "(default: the nano mix)",
    )
    parser.add_argument("--stop-after", type=int, default=None, help="stop after N steps now")
    parser.add_argument("--no-resume", action="store_true", help="ignore an existing last.pt")
    parser.add_argument(
        "--export", type=Path, default=None, help="write the final weights to this .safetensors"
    )
    parser.add_argument("--name", default=DEFAULT_MODEL, help="model name stored in the export")
    add_verbosity_option(parser)
    parser.set_defaults(func=run_train)
    return parser


def parse_mix(text: str) -> dict[str, float]:
    """``"nuclei=0.3,cells=0.2"`` -> ``{"nuclei": 0.3, "cells": 0.2}`` (kinds of `synthetic`)."""
    from ..synthetic import GENERATORS

    mix = {}
    for item in text.split(","):
        kind, _, weight = item.strip().partition("=")
        if kind not in GENERATORS:
            raise argparse.ArgumentTypeError(
                f"unknown data kind {kind!r} in --mix; expected some of {sorted(GENERATORS)}"
            )
        try:
            value = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"weight {weight!r} of {kind!r} in --mix is not a number (write kind=0.2)"
            ) from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(
                f"weight {value} of {kind!r} in --mix must be a finite number >= 0"
            )
        mix[kind] = value
    if sum(mix.values()) <= 0:
        raise argparse.ArgumentTypeError(f"--mix {text!r} has no positive weight")
    return mix


def run_train(args: argparse.Namespace) -> int:
    from ..model import ModelError
    from .trainer import TrainSettings, export_weights, train

    if min(args.frames, args.batch_size, args.steps, args.objects) < 1:
        print(
            f"error: --frames ({args.frames}), --batch-size ({args.batch_size}), --objects "
            f"({args.objects}) and --steps ({args.steps}) must be >= 1",
            file=sys.stderr,
        )
        return 2
    settings = TrainSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        num_frames=args.frames,
        objects_per_clip=args.objects,
        tracked_per_clip=args.tracked,
        click_task=not args.no_click_task,
        click_seed=args.click_seed,
        carry_mask=args.carry_mask,
        carry_drop=args.carry_drop,
        focal_weight=args.focal_weight,
        dice_weight=args.dice_weight,
        lr=args.lr,
        warmup=args.warmup,
        seed=args.seed,
        threads=args.threads,
        init_from=args.init_from,
        event_focus=args.event_focus,
        end_focus=args.end_focus,
        object_score_weight=args.score_weight,
    )
    for flag, value in (
        ("--carry-drop", args.carry_drop),
        ("--event-focus", args.event_focus),
        ("--end-focus", args.end_focus),
    ):
        if not 0.0 <= value <= 1.0:
            print(f"error: {flag} ({value}) must be in [0, 1]", file=sys.stderr)
            return 2
    if not 0.0 <= args.score_weight < float("inf"):
        print(f"error: --score-weight ({args.score_weight}) must be a number >= 0", file=sys.stderr)
        return 2
    if args.mix is not None:
        settings.mix = args.mix
    try:
        result = train(
            settings,
            args.run_dir,
            device=args.device,
            resume=not args.no_resume,
            stop_after=args.stop_after,
        )
    except (ValueError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"steps": result.steps_done, "wall_seconds": round(result.wall_seconds, 1)}))
    if args.export is not None:
        path = export_weights(args.run_dir, args.export, name=args.name)
        print(f"exported {path}")
    return 0


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``evaluate``: the quality tables of the model card, for any model and data set."""
    from ..model.registry import DEFAULT_MODEL

    parser = subparsers.add_parser(
        "evaluate",
        help="measure a model (Dice) on held-out synthetic suites or your own labelled data",
        description="One click per object (2-D), one prompted slice/frame propagated both ways "
        "(volumes, time-lapses), small objects, selective vs sam2 memory; a seeded watershed and "
        "scikit-image's random walker get the same clicks. Prints a markdown table.",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="registry name or checkpoint path")
    parser.add_argument(
        "--suite",
        action="append",
        default=None,
        help="one of all, 2d, volume, timelapse, small, memory, real-like "
        "(repeatable; default all)",
    )
    parser.add_argument("--quick", action="store_true", help="one small sample per data kind")
    parser.add_argument("--no-baselines", action="store_true", help="skip watershed/random walker")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    add_precision_option(parser)
    parser.add_argument("--image", type=Path, default=None, help="your image (.tif or .npy)")
    parser.add_argument("--labels", type=Path, default=None, help="its instance labels")
    parser.add_argument("--axis", type=int, default=0, help="propagation axis of a 3-D image")
    parser.add_argument(
        "--zoom", action="store_true", help="also score the model with the per-object zoom"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="first seed of the synthetic suites (default 10000, the model card's test set; "
        "pick models on another, e.g. 20000)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every score here")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    add_verbosity_option(parser)
    parser.set_defaults(func=run_evaluate)
    return parser


def _read_array(path: Path):
    import numpy as np

    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    raise ValueError(f"{str(path)!r}: expected a .tif, .tiff or .npy file")


def run_evaluate(args: argparse.Namespace) -> int:
    from ..atomic import write_text_atomic
    from ..model import ModelError, load_model
    from .eval_report import SUITES
    from .evaluate import evaluate, evaluate_data

    suites = args.suite or ["all"]
    if "all" in suites:
        suites = list(SUITES)
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        print(f"error: unknown suite(s) {unknown}; expected all or {list(SUITES)}", file=sys.stderr)
        return 2
    if (args.image is None) != (args.labels is None):
        print("error: --image and --labels go together", file=sys.stderr)
        return 2
    try:
        model = load_model(str(args.model), device=args.device, precision=args.precision)
        if args.image is not None:
            report = evaluate_data(
                model,
                _read_array(args.image),
                _read_array(args.labels),
                axis=args.axis,
                baselines=not args.no_baselines,
                name=args.image.name,
                zoom=args.zoom,
            )
        else:
            report = evaluate(
                model,
                suites,
                quick=args.quick,
                baselines=not args.no_baselines,
                progress=lambda line: print(line, file=sys.stderr),
                zoom=args.zoom,
                **({} if args.seed is None else {"seed": args.seed}),
            )
    except (ModelError, KeyError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    markdown = report.to_markdown()
    print(markdown)
    if args.json is not None:
        write_text_atomic(args.json, report.to_json())
    if args.markdown is not None:
        write_text_atomic(args.markdown, markdown + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_samed2.train.commands")
    add_verbosity_option(parser, top_level=True)
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_train_parser(subparsers)
    add_evaluate_parser(subparsers)
    args = parser.parse_args(argv)
    with log_to_stderr(args.verbose):
        return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
