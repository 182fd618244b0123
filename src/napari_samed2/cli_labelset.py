"""The ``samed2 labelset`` commands: create a label set, import into it, export it as TIFF
pairs, and summarise it (docs/labelsets.md).
"""

from __future__ import annotations

import argparse
import json
import re

from .cli_logging import add_verbosity_option

_FRAMES = re.compile(r"^\d+(-\d+)?$")


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``labelset`` and its actions to the ``samed2`` sub-commands."""
    labelset = commands.add_parser(
        "labelset",
        help="label sets on disk (frames, masks, provenance) for fine-tuning",
        description="A label set is a folder of labelled frames: TIFF images and masks with "
        "JSON records (docs/labelsets.md).",
    )
    actions = labelset.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="make an empty label set in a new folder")
    create.add_argument("set", metavar="SET", help="folder to create (new or empty)")
    create.add_argument("--name", help="the set's name (default: the folder's name)")
    create.add_argument("--description", default="", help="a line saying what the set holds")
    create.set_defaults(func=create_command)

    add = actions.add_parser(
        "import",
        help="import a stack and its labels, or a folder of image/mask TIFF pairs",
        description="--image STACK --labels LABELS imports frames of a stack (.tif, .tiff, "
        ".npy, .zarr) with its label stack: without --frames every frame holding a label, "
        "with --frames exactly those; each complete (a label id of the stack missing on an "
        "imported frame is absent there). --pairs DIR imports NAME.tif + NAME_masks.tif "
        "(or _mask, _labels), or images/ + masks/ (or labels/) folders of same-named files.",
    )
    add.add_argument("set", metavar="SET", help="the label set (made with `create`)")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="STACK", help="image or stack file")
    source.add_argument("--pairs", metavar="DIR", help="folder of image/mask TIFF pairs")
    add.add_argument("--labels", metavar="LABELS", help="label stack of --image, same shape")
    add.add_argument(
        "--axis",
        type=int,
        default=None,
        help="frame axis of --image (default 0; the last two axes are rows and columns)",
    )
    add.add_argument(
        "--frames",
        type=parse_frames,
        default=None,
        metavar="3,10,17",
        help="frames to import along --axis, complete (ranges like 20-25 too)",
    )
    add.add_argument(
        "--reference",
        action="store_true",
        help="record the stack's path and frame index instead of copying the frames",
    )
    add.set_defaults(func=import_command)

    export = actions.add_parser(
        "export", help="write OUT_DIR/images/NNNNNN.tif and OUT_DIR/masks/NNNNNN.tif"
    )
    export.add_argument("set", metavar="SET")
    export.add_argument("out", metavar="OUT_DIR", help="new or empty folder")
    export.set_defaults(func=export_command)

    info = actions.add_parser("info", help="summarise a label set")
    info.add_argument("set", metavar="SET")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(func=info_command)

    for parser in (labelset, create, add, export, info):
        add_verbosity_option(parser)


def parse_frames(text: str) -> list[int]:
    """``"3,10,17"`` or ``"3,20-25"`` -> frame numbers (argparse type)."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or not all(_FRAMES.match(part) for part in parts):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected frame numbers (0 or more) separated by commas, e.g. 3,10,17; "
            "ranges like 20-25 too"
        )
    frames: list[int] = []
    for part in parts:
        first, _, last = part.partition("-")
        if last and int(last) < int(first):
            raise argparse.ArgumentTypeError(f"range {part!r} in {text!r} runs backwards")
        frames.extend(range(int(first), int(last or first) + 1))
    return frames


def create_command(args: argparse.Namespace) -> int:
    from .labelset import LabelSet

    labelset = LabelSet.create(args.set, name=args.name, description=args.description)
    print(f"created label set {labelset.name!r} in {labelset.path}")
    return 0


def import_command(args: argparse.Namespace) -> int:
    from .cli import CommandError
    from .labelset import LabelSet, import_pairs, import_stack

    if args.pairs is not None:
        extra = [f"--{n}" for n in ("labels", "axis", "frames") if getattr(args, n) is not None]
        if extra or args.reference:
            extra += ["--reference"] if args.reference else []
            verb = "applies" if len(extra) == 1 else "apply"
            raise CommandError(f"{', '.join(extra)} {verb} to --image, not to --pairs")
    elif args.labels is None:
        raise CommandError("--image needs --labels LABELS: the label stack of the same shape")
    labelset = LabelSet.open(args.set)
    if args.pairs is not None:
        report = import_pairs(labelset, args.pairs)
        what = args.pairs
    else:
        report = import_stack(
            labelset,
            args.image,
            args.labels,
            axis=args.axis,
            frames=args.frames,
            reference=args.reference,
        )
        what = args.image
    for note in report.skipped:
        print(f"skipped {note}")
    if not report.entries:
        raise CommandError(f"nothing imported from {what!r}: no frame holds a label")
    ids = report.entries
    print(
        f"imported {len(ids)} frames ({report.masks} object masks) into {labelset.path}: "
        f"entries {ids[0]}..{ids[-1]}"
    )
    return 0


def export_command(args: argparse.Namespace) -> int:
    from .labelset import LabelSet, export_pairs

    report = export_pairs(LabelSet.open(args.set), args.out)
    print(f"wrote {len(report.images)} image/mask pairs to {report.out_dir} (images/, masks/)")
    if report.incomplete:
        print(
            f"note: {len(report.incomplete)} entries are not complete (ids "
            f"{report.incomplete[:10]}{'...' if len(report.incomplete) > 10 else ''}): their "
            "masks' background may hide objects nobody labelled"
        )
    return 0


def info_command(args: argparse.Namespace) -> int:
    from .labelset import LabelSet

    summary = LabelSet.open(args.set).summary()
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    for label, text in _info_lines(summary):
        print(f"{label:<10} {text}")
    return 0


def _info_lines(summary: dict) -> list[tuple[str, str]]:
    lines = [
        (
            "label set",
            f"{summary['path']} ({summary['name']!r}, format version "
            f"{summary['version']}, created {summary['created']})",
        ),
    ]
    if not summary["entries"]:
        lines.append(("entries", "0: the set is empty; add frames with `samed2 labelset import`"))
        lines.append(("size", _size(summary["bytes"])))
        return lines
    referenced = f", {summary['referenced']} kept in their source files" * bool(
        summary["referenced"]
    )
    origins = ", ".join(f"{n} {origin}" for origin, n in sorted(summary["origins"].items()))
    lines += [
        ("entries", f"{summary['entries']} frames ({summary['complete']} complete{referenced})"),
        ("objects", f"{summary['objects']} objects, {summary['masks']} masks ({origins or '-'})"),
        ("shapes", "; ".join(f"{shape}: {n}" for shape, n in summary["shapes"].items())),
    ]
    for source in summary["sources"]:
        where = source["path"] or source["name"] or "(unnamed)"
        axis = "" if source["axis"] is None else f", axis {source['axis']}"
        position = f", position {source['position']}" if source["position"] else ""
        frames = f"{source['frames']} frames"
        lines.append(("source", f"{source['kind']} {where}{axis}{position}: {frames}"))
    lines.append(("size", _size(summary["bytes"])))
    return lines


def _size(count: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count} bytes"  # pragma: no cover
