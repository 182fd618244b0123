"""The ``samed2`` command: models, downloads, the demo, headless propagation, evaluation."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .cli_logging import add_verbosity_option, log_to_stderr
from .cli_model import add_precision_option

# Named, not __name__: run as ``python -m napari_samed2.cli`` this module is ``__main__``.
logger = logging.getLogger("napari_samed2.cli")


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    with log_to_stderr(args.verbose):
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("samed2: interrupted", file=sys.stderr)
            return 130
        except Exception as error:  # every error reaches the user as one plain line
            if getattr(args, "debug", False):
                raise
            logger.debug("samed2 %s failed", args.command, exc_info=True)
            print(f"samed2 {args.command}: error: {_message(error)}", file=sys.stderr)
            return 2


def _message(error: BaseException) -> str:
    # str(KeyError) is the repr of its message; the message itself reads better.
    if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        return error.args[0]
    return str(error)


def build_parser() -> argparse.ArgumentParser:
    from .engine.options import MEMORY_MODES
    from .engine.results import DIRECTIONS
    from .model.profile import AXIS_KINDS
    from .model.registry import DEFAULT_MODEL

    parser = argparse.ArgumentParser(
        prog="samed2",
        description="SAMed-2 / SAM2 segmentation and propagation for volumes and videos.",
    )
    parser.add_argument("--version", action="version", version=f"napari-samed2 {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    add_verbosity_option(parser, top_level=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    models = commands.add_parser("models", help="list known models and what is cached")
    models.set_defaults(func=_models)

    fetch = commands.add_parser("fetch", help="download a model's weights into the cache")
    fetch.add_argument("name", help="registry name, e.g. sam2.1-tiny")
    fetch.set_defaults(func=_fetch)

    demo = commands.add_parser(
        "demo", help="the embedded model follows nuclei through a sample volume"
    )
    demo.add_argument("--headless", action="store_true", help="no window even with a display")
    demo.add_argument("--out", default="samed2-demo", help="output folder (headless run)")
    demo.add_argument("--model", default=DEFAULT_MODEL, help="registry name or checkpoint")
    demo.add_argument("--device", default=None, help="auto (default), cuda, mps or cpu")
    add_precision_option(demo)
    demo.set_defaults(func=_demo)

    propagate = commands.add_parser(
        "propagate",
        help="segment a stack headless from points/boxes",
        description="Prompts are FRAME,ROW,COL (points) or FRAME,ROW0,COL0,ROW1,COL1 "
        "(boxes), in pixels, optionally followed by @OBJECT_ID (default 1).",
    )
    propagate.add_argument("input", help=".tif/.tiff, .npy or .zarr stack (or a 2-D image)")
    propagate.add_argument(
        "--out",
        required=True,
        help="labels file to write (.tif or .npy); never the input, and an existing file only "
        "with --force",
    )
    propagate.add_argument(
        "--force", action="store_true", help="replace --out/--confidence files that exist"
    )
    propagate.add_argument("--model", default=DEFAULT_MODEL, help="registry name or checkpoint")
    propagate.add_argument("--device", default=None)
    add_precision_option(propagate)
    propagate.add_argument(
        "--axis",
        type=int,
        default=None,
        help="propagation axis (default 0; required for a stack with two axes before rows and "
        "columns, e.g. CZYX)",
    )
    propagate.add_argument(
        "--channel",
        type=int,
        default=None,
        metavar="N",
        help="for a stack with two axes before rows and columns (e.g. CZYX): the index along "
        "the axis that is not propagated (e.g. the channel)",
    )
    propagate.add_argument("--point", action="append", default=[], metavar="F,R,C[@ID]")
    propagate.add_argument("--negative", action="append", default=[], metavar="F,R,C[@ID]")
    propagate.add_argument("--box", action="append", default=[], metavar="F,R0,C0,R1,C1[@ID]")
    propagate.add_argument("--direction", choices=DIRECTIONS, default="both")
    propagate.add_argument(
        "--memory",
        choices=MEMORY_MODES,
        default=None,
        help="default: the model's (selective for samed2 models, sam2 for SAM 2 networks)",
    )
    propagate.add_argument(
        "--gate",
        type=float,
        default=0.5,
        help="confidence (0-1) a frame needs to enter the selective memory (default 0.5)",
    )
    propagate.add_argument(
        "--confidence", help="CSV of per-frame confidence to write (same rules as --out)"
    )
    propagate.add_argument(
        "--zoom",
        action="store_true",
        help="segment each object in its own region sized to it (small objects in big frames)",
    )
    propagate.add_argument(
        "--motion",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the carried mask follows each object's motion: for a time-lapse or video "
        "(models that carry the mask, e.g. samed2-nano; default: the profile's choice for "
        "--axis-kind: on for samed2-nano on T, off otherwise)",
    )
    propagate.add_argument(
        "--connected",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop parts of a propagated mask that do not touch the object's mask on the frame "
        "before (default: the model profile's choice: on for samed2-nano, off for SAM2 models)",
    )
    propagate.add_argument(
        "--ends-once",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="an object whose mask is empty on two slices in a row (or on one marked absent) "
        "stays absent beyond them, away from its prompts "
        "(default: the model profile's choice for the axis kind: on for samed2-nano on depth "
        "axes, off otherwise)",
    )
    propagate.add_argument(
        "--axis-kind",
        choices=AXIS_KINDS,
        default=None,
        help="what the frame axis is: Z (depth) or T (time); picks the model profile's "
        "defaults for --motion and --ends-once (default: unknown, both off)",
    )
    propagate.add_argument(
        "--disk-cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read and keep the stack's image features in the on-disk cache (default on; see "
        "samed2 encode)",
    )
    propagate.set_defaults(func=_propagate)
    for command in (models, fetch, demo, propagate):
        add_verbosity_option(command)
    from .cli_labelset import register as register_labelset

    register_labelset(commands)
    from .cli_finetune import register as register_finetune

    register_finetune(commands)
    from .cli_encode import register as register_encode

    register_encode(commands)
    try:
        from .train.commands import add_evaluate_parser, add_train_parser
    except ImportError:  # training extras not importable: the other commands still work
        pass
    else:
        add_evaluate_parser(commands)
        add_train_parser(commands)
    return parser


def _models(args: argparse.Namespace) -> int:
    from .model import DEFAULT_MODEL, REGISTRY, cache_dir, cached_path

    rows = [("name", "source", "size", "cached", "description")]
    for name, spec in REGISTRY.items():
        size = f"{spec.size_bytes / 1e6:.0f} MB" if spec.size_bytes else "-"
        path = cached_path(spec)
        if path is not None and spec.bundled:
            size = f"{path.stat().st_size / 1e6:.1f} MB"
        marker = " (default)" if name == DEFAULT_MODEL else ""
        rows.append((name + marker, spec.source, size, "yes" if path else "no", spec.description))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
            + "  "
            + row[4]
        )
    from .cli_finetune import print_finetuned_models

    print_finetuned_models()
    print(f"\ncache: {cache_dir()}  (set NAPARI_SAMED2_CACHE to move it)")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from .model import fetch_weights, get_spec

    path = fetch_weights(get_spec(args.name))
    print(path)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    if not args.headless and demo.has_display():
        demo.open_viewer(args.model, args.device, precision=args.precision)
        return 0
    result = demo.run_headless(args.out, args.model, args.device, precision=args.precision)
    for obj_id, score in result.dice.items():
        print(f"object {obj_id}: Dice {score:.3f}")
    print(
        f"mean Dice {result.mean_dice:.3f} over {len(result.dice)} objects; "
        f"{result.seconds:.1f} s in all, {result.frames_per_second:.1f} frames/s propagation"
    )
    print(f"labels:  {result.labels_path}\noverlay: {result.overlay_path}")
    return 0


def _propagate(args: argparse.Namespace) -> int:
    from .cli_prompts import parse_prompt
    from .engine import FrameSource, PropagationSession, SessionOptions, SessionSettings
    from .model import load_model
    from .pipeline import choose_axes, segment_stack
    from .stack_files import (
        check_labels_suffix,
        check_output_paths,
        read_stack,
        write_confidence_csv,
        write_labels,
    )

    # Everything that can be checked without the model is checked before it loads, so a
    # mistake costs seconds, not a whole run.
    prompts = [parse_prompt("point", text) for text in args.point]
    prompts += [parse_prompt("negative", text) for text in args.negative]
    prompts += [parse_prompt("box", text) for text in args.box]
    if not prompts:
        raise CommandError("give at least one --point or --box")
    options = SessionOptions(
        non_overlap=True,  # one label per pixel: the surest object takes a contested pixel
        memory=args.memory,
        gate=args.gate,
        zoom=args.zoom,
        motion=args.motion,
        connected=args.connected,
        ends_once=args.ends_once,
    )
    check_labels_suffix(args.out)
    outputs = {"--out": args.out}
    if args.confidence:
        outputs["--confidence"] = args.confidence
    check_output_paths(outputs, inputs=[args.input, args.model], force=args.force)
    data = read_stack(args.input)
    axes = choose_axes(data.shape, args.axis, args.channel)
    frames = FrameSource(data, axes.axis, position=axes.position)
    for prompt in prompts:
        if not 0 <= prompt.frame < frames.num_frames:
            raise CommandError(
                f"{prompt.kind} prompt on frame {prompt.frame}: the input has frames "
                f"0..{frames.num_frames - 1} along axis {axes.axis}"
            )
    model = load_model(args.model, device=args.device, precision=args.precision)

    def report(result, done, total):
        print(f"\rframe {result.frame:4d}  {done}/{total}", end="", file=sys.stderr, flush=True)

    session = PropagationSession(
        model,
        data,
        axis=axes.axis,
        position=axes.position,
        options=options.resolved(model.profile, args.axis_kind),
        settings=SessionSettings() if args.disk_cache else SessionSettings(disk_cache_bytes=0),
    )
    try:
        segmentation = segment_stack(session, prompts, args.direction, on_frame=report)
    finally:
        session.close()  # finishes writing features to the disk cache
    print(file=sys.stderr)
    write_labels(args.out, segmentation.labels)
    if args.confidence:
        write_confidence_csv(args.confidence, segmentation.confidence_rows())
    print(f"wrote {args.out} ({len(segmentation.results)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
