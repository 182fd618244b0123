"""Fixtures for the label-set tests: sets on disk, and real child processes that write them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import napari_samed2
from napari_samed2.labelset import LabelSet

# the children import the package from where this test process found it
PACKAGE_ROOT = str(Path(napari_samed2.__file__).resolve().parents[1])


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    return env


def start_child(script: str, *args: str) -> subprocess.Popen:
    """A Python child running ``script`` (dedented) with ``args``, stdout a pipe of lines."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )


def frame_from_seed(seed: int, shape=(48, 64)) -> tuple[np.ndarray, np.ndarray]:
    """A uint16 image and its uint8 labels (ids 0..3), the same for the same seed."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 65535, shape, dtype=np.uint16)
    labels = (image >> 14).astype(np.uint8)
    return image, labels


@pytest.fixture
def labelset(tmp_path) -> LabelSet:
    return LabelSet.create(tmp_path / "set", name="cells")
