"""The demo: the embedded model follows nuclei through a synthetic volume.

With a display it opens napari with the widget; without one it runs the same engine headless,
writes the labels (TIFF) and an overlay (PNG), and prints Dice against the ground truth.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .model import DEFAULT_MODEL
from .pipeline import Prompt, segment_stack
from .train.metrics import dice

DEMO_SHAPE = (32, 192, 192)
DEMO_SEED = 2026
DEMO_OBJECTS = 3


@dataclass
class DemoResult:
    dice: dict[int, float]
    labels_path: Path
    overlay_path: Path
    seconds: float
    frames_per_second: float

    @property
    def mean_dice(self) -> float:
        return float(np.mean(list(self.dice.values()))) if self.dice else 0.0


def demo_sample():
    """The demo volume and its ground truth (a seeded synthetic nuclei stack)."""
    from .synthetic import nuclei_volume

    return nuclei_volume(shape=DEMO_SHAPE, seed=DEMO_SEED)


def demo_prompts(labels: np.ndarray, count: int = DEMO_OBJECTS) -> tuple[list[Prompt], dict]:
    """One click per object, at the deepest interior point of the largest objects on the
    middle slice (what a user would click). Returns the prompts and object id -> truth id."""
    middle = labels.shape[0] // 2
    ids, sizes = np.unique(labels[middle][labels[middle] > 0], return_counts=True)
    chosen = ids[np.argsort(sizes)[::-1][:count]]
    prompts, truth_ids = [], {}
    for obj_id, truth_id in enumerate(sorted(chosen.tolist()), start=1):
        depth = ndimage.distance_transform_edt(labels[middle] == truth_id)
        row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
        prompts.append(Prompt("point", middle, obj_id, (float(row), float(col))))
        truth_ids[obj_id] = truth_id
    return prompts, truth_ids


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or (
        os.name == "nt" or os.uname().sysname == "Darwin"
    )


def run_headless(
    out_dir: str | Path, model_name: str = DEFAULT_MODEL, device=None, precision=None
) -> DemoResult:
    """Segment the demo volume headless and write labels, overlay and Dice (``device`` and
    ``precision`` as `load_model` takes them)."""
    import tifffile

    from .atomic import atomic_path
    from .engine import PropagationSession
    from .model import load_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sample = demo_sample()
    prompts, truth_ids = demo_prompts(sample.labels)
    start = time.perf_counter()
    model = load_model(model_name, device=device, precision=precision)
    session = PropagationSession(model, sample.image, axis=0, axis_kind="Z")  # a volume
    propagate_start = time.perf_counter()
    segmentation = segment_stack(session, prompts, direction="both")
    elapsed = time.perf_counter() - start
    fps = session.num_frames / max(time.perf_counter() - propagate_start, 1e-9)
    scores = {
        obj_id: dice(segmentation.labels == obj_id, sample.labels == truth_id)
        for obj_id, truth_id in truth_ids.items()
    }
    labels_path = out_dir / "demo_labels.tif"
    with atomic_path(labels_path) as tmp:
        tifffile.imwrite(tmp, segmentation.labels, compression="zlib")
    overlay_path = out_dir / "demo_overlay.png"
    write_overlay(overlay_path, sample.image, segmentation.labels, sample.labels, prompts)
    return DemoResult(scores, labels_path, overlay_path, elapsed, fps)


def write_overlay(path: Path, image, labels, truth, prompts) -> None:
    """A row of slices with predicted outlines (colour) and ground-truth outlines (white)."""
    import imageio.v3 as iio
    from skimage.color import label2rgb
    from skimage.segmentation import find_boundaries

    from .atomic import atomic_path

    frames = np.linspace(0, image.shape[0] - 1, 5).round().astype(int)
    low, high = np.percentile(image, (0.5, 99.8))
    panels = []
    for frame in frames:
        gray = np.clip((image[frame] - low) / max(high - low, 1e-9), 0, 1)
        rgb = label2rgb(labels[frame], image=gray, alpha=0.35, bg_label=0, image_alpha=1.0)
        rgb[find_boundaries(truth[frame] * (labels[frame] > 0), mode="outer")] = 1.0
        for prompt in prompts:
            if prompt.frame == frame:
                row, col = (round(v) for v in prompt.coords)
                rgb[max(row - 2, 0) : row + 3, max(col - 2, 0) : col + 3] = (1.0, 1.0, 0.0)
        panels.append(np.pad(rgb, ((4, 4), (4, 4), (0, 0)), constant_values=0.1))
    picture = (np.concatenate(panels, axis=1) * 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, picture, extension=".png")


def open_viewer(model_name: str = DEFAULT_MODEL, device=None, precision=None):
    """Open napari with the demo volume, the widget, the model and a propagated object."""
    import napari

    from .ui.demo import show_demo

    sample = demo_sample()
    prompts, _ = demo_prompts(sample.labels, count=1)
    viewer = napari.Viewer(title="napari-samed2 demo")
    show_demo(viewer, sample, prompts, model_name=model_name, device=device, precision=precision)
    napari.run()
