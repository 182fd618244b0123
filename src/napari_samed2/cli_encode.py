"""``samed2 encode``: run the image encoder over a whole stack once, into the on-disk feature
cache, so that later sessions (``samed2 propagate``, the widget) start without it.

`cli.py` adds the command with `register`; the work is `engine.precompute_features`.
"""

from __future__ import annotations

import argparse
import sys

from .cli_logging import add_verbosity_option

GIB = 1024**3


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``encode`` to the ``samed2`` command's subparsers."""
    from .model.registry import DEFAULT_MODEL

    parser = subparsers.add_parser(
        "encode",
        help="precompute a stack's image features into the on-disk cache",
        description="Run MODEL's image encoder over every frame of STACK and keep the features "
        "in the feature cache ($NAPARI_SAMED2_FEATURES, else 'features' in the cache folder "
        "that 'samed2 models' shows). Later sessions on the same stack with the same model, "
        "precision and device (samed2 propagate, the napari widget) read them instead of "
        "encoding. Frames already cached are skipped.",
    )
    parser.add_argument("input", metavar="STACK", help=".tif/.tiff, .npy or .zarr stack")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="registry name or checkpoint")
    parser.add_argument("--device", default=None, help="auto (default), cuda, mps or cpu")
    parser.add_argument(
        "--precision",
        default=None,
        help="compute dtype, fp32 or bf16 (default: bf16 on CUDA, fp32 elsewhere); sessions "
        "find the features only with the same precision",
    )
    parser.add_argument(
        "--axis",
        type=int,
        default=None,
        help="propagation axis (default 0; required for a stack with two axes before rows and "
        "columns, e.g. CZYX)",
    )
    parser.add_argument(
        "--channel",
        type=int,
        default=None,
        metavar="N",
        help="for a stack with two axes before rows and columns (e.g. CZYX): the index along "
        "the axis that is not propagated (e.g. the channel)",
    )
    parser.add_argument(
        "--cache-gib",
        type=_positive_gib,
        default=None,
        metavar="GIB",
        help="bound of the feature cache in GiB (default 10); least recently used stacks are "
        "evicted beyond it",
    )
    add_verbosity_option(parser)
    parser.set_defaults(func=run_encode)
    return parser


def run_encode(args: argparse.Namespace) -> int:
    from .cli import CommandError
    from .engine import FeatureStore, FrameSource, SessionSettings, default_directory
    from .engine.precompute import precompute_features
    from .model import check_precision, load_model
    from .pipeline import choose_axes
    from .stack_files import read_stack

    # Everything that can be checked without the model is checked before its weights load.
    check_precision(args.precision)
    settings = SessionSettings()
    if args.cache_gib is not None:
        settings.disk_cache_bytes = int(args.cache_gib * GIB)
    folder = default_directory()
    FeatureStore(folder, settings.disk_cache_bytes)  # StoreError: a file in the folder's place
    data = read_stack(args.input)
    axes = choose_axes(data.shape, args.axis, args.channel)
    frames = FrameSource(data, axes.axis, position=axes.position)
    model = load_model(args.model, device=args.device, precision=args.precision)
    dtype = str(model.dtype).removeprefix("torch.")
    print(
        f"encoding {frames.num_frames} frames of {args.input} (axis {axes.axis}) with "
        f"{model.name} on {model.device} ({dtype}) into {folder}",
        file=sys.stderr,
    )
    from tqdm import tqdm

    bar = tqdm(total=frames.num_frames, unit="frame", file=sys.stderr, disable=None)
    warned = []

    def progress(done: int, total: int, per_frame: int) -> None:
        bar.update(done - bar.n)
        if not warned and per_frame * total > settings.disk_cache_bytes:
            warned.append(True)
            bar.write(
                f"warning: this stack's features need about {_gb(per_frame * total)}, more "
                f"than the cache's bound of {_gb(settings.disk_cache_bytes)}: only the last "
                "frames will stay cached; raise the bound with --cache-gib",
                file=sys.stderr,
            )

    try:
        report = precompute_features(
            model, data, axes.axis, position=axes.position, settings=settings, progress=progress
        )
    finally:
        bar.close()
    print(
        f"{report.frames} frames: {report.encoded} encoded, {report.cached} already cached; "
        f"{_gb(report.bytes_written)} written to {report.folder} (cache now "
        f"{_gb(report.cache_bytes)} of {_gb(report.max_bytes)})"
    )
    if report.kept < report.frames:
        raise CommandError(
            f"only {report.kept} of {report.frames} frames stayed in the cache: its bound of "
            f"{_gb(report.max_bytes)} is too small for this stack; raise it with --cache-gib"
        )
    return 0


def _gb(nbytes: int) -> str:
    return f"{nbytes / GIB:.2f} GiB" if nbytes >= GIB / 10 else f"{nbytes / 1024**2:.1f} MiB"


def _positive_gib(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GiB") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"the cache bound must be > 0 GiB, got {text}")
    return value
