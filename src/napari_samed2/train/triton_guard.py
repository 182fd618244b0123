"""Keep triton out of a process that holds Mesa's LLVM (napari on software OpenGL), where
importing it crashes the process."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def guard_triton_import() -> bool:
    """Make ``import triton`` fail cleanly if importing it would crash this process.

    torch imports triton the first time an optimizer is built (through ``torch._dynamo``).
    triton bundles its own LLVM; in a process that already loaded Mesa's ``libLLVM`` (napari
    drawing with llvmpipe: virtual machines, remote desktops, Xvfb) loading it is a
    segmentation fault, measured here: napari's viewer, then ``import triton``. torch runs
    without triton (it is needed by ``torch.compile`` only, which this package does not use),
    so in that case triton is marked as not importable for this process. Returns whether it
    was.
    """
    if "triton" in sys.modules or not sys.platform.startswith("linux"):
        return False
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    if "libLLVM" not in maps:
        return False
    logger.info("Mesa's LLVM is loaded (software OpenGL): triton is kept out of this process")
    sys.modules["triton"] = None  # `import triton` now raises ImportError
    return True
