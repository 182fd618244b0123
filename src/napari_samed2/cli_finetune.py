"""``samed2 finetune``: fine-tune a model on a label set and write a new checkpoint.

`cli.py` adds the command with `register`; the work is `train.finetune.finetune` (the same
function the GUI and scripts call). Runs under ``torchrun --nproc_per_node N`` unchanged.
"""

from __future__ import annotations

import argparse
import sys

from .cli_logging import add_verbosity_option


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``finetune`` to the ``samed2`` command's subparsers."""
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a model on a label set; writes a new .safetensors and its .json card",
        description="Fine-tune BASE on the label set SET: by default the mask decoder, memory "
        "and object heads learn (the image encoder stays frozen). Objects held out of the set "
        "are scored through the engine before training and as it goes; the best weights on "
        "them are written to --out, with a JSON card beside it. The base is never modified. "
        "Also runs under torchrun --nproc_per_node N (one share of the set per process).",
    )
    parser.add_argument("labelset", metavar="SET", help="the label set's folder")
    parser.add_argument(
        "--base", required=True, metavar="MODEL", help="registry name or checkpoint path"
    )
    parser.add_argument(
        "--out", required=True, metavar="NEW.safetensors", help="new checkpoint (must not exist)"
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes", type=_positive_float, default=None, help="time budget (default 5 minutes)"
    )
    budget.add_argument("--steps", type=_positive_int, default=None, help="optimizer steps")
    parser.add_argument(
        "--train",
        choices=("decoder", "adapters", "all"),
        default="decoder",
        help="what learns: decoder (default: mask decoder, memory, object heads), adapters "
        "(those and SAMed-2's temporal adapters) or all",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument(
        "--holdout",
        type=_fraction,
        default=0.2,
        help="fraction of the set's objects held out to pick the best weights (default 0.2; "
        "0 keeps the last weights)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the clips")
    parser.add_argument("--lr", type=_positive_float, default=None, help="learning rate")
    add_verbosity_option(parser)
    parser.set_defaults(func=run_finetune)
    return parser


def run_finetune(args: argparse.Namespace) -> int:
    from .train.finetune import FinetuneSettings, finetune

    settings = FinetuneSettings()
    if args.lr is not None:
        settings.lr = args.lr
    result = finetune(
        args.labelset,
        args.base,
        args.out,
        minutes=args.minutes,
        steps=args.steps,
        train=args.train,
        device=args.device,
        holdout=args.holdout,
        seed=args.seed,
        progress=_print_progress,
        settings=settings,
    )
    print(file=sys.stderr)
    if result.path is None:  # a rank other than 0 of a torchrun: rank 0 reports
        return 0
    before, after = result.heldout_before, result.heldout_after
    if before is not None and after is not None:
        scores = f"held-out Dice {before:.3f} -> {after:.3f} (weights of step {result.best_step})"
    else:
        scores = "no held-out objects: the last weights are kept"
    print(
        f"{result.steps} steps in {result.wall_seconds:.0f} s (ended by {result.stopped_by}); "
        f"{scores}\nwrote {result.path}\ncard  {result.card_path}"
    )
    return 0


def print_finetuned_models() -> None:
    """The user's fine-tuned models, for ``samed2 models`` (nothing when there are none)."""
    from .model.user_models import user_models, user_models_path

    models = user_models()
    if not models:
        return
    print(f"\nfine-tuned models ({user_models_path()}):")
    rows = [("name", "base", "held-out Dice", "file")]
    for model in models:
        score = "-" if model.heldout_dice is None else f"{model.heldout_dice:.3f}"
        rows.append((model.name, model.base, score, model.path))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        print("  ".join(cells) + "  " + row[3])


def _print_progress(progress) -> None:
    total = f"/{progress.steps}" if progress.steps else ""
    budget = f"/{progress.budget_seconds:.0f}" if progress.budget_seconds else ""
    dice = "" if progress.heldout_dice is None else f"  held-out Dice {progress.heldout_dice:.3f}"
    loss = "" if progress.loss is None else f"  loss {progress.loss:.3f}"
    print(
        f"\rstep {progress.step}{total}  {progress.seconds:.0f}{budget} s{loss}{dice}   ",
        end="",
        file=sys.stderr,
        flush=True,
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a fraction in [0, 1)")
    return value
