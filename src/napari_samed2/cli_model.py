"""Options of the commands that load a model (``--precision``), the same everywhere."""

from __future__ import annotations

import argparse

PRECISIONS = ("auto", "fp32", "bf16")


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--precision auto|fp32|bf16`` (unset: `load_model`'s default for the device)."""
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="compute precision (default: bf16 on CUDA, auto on CPU, fp32 on MPS); auto: bf16 "
        "where it is measured faster on this machine and keeps the masks, else fp32 (measured "
        "once per model size, remembered in the cache); fp32: exact",
    )
