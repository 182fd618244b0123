"""Regenerate the widget screenshots in docs/images (run under Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py \
        [--model samed2-nano|PATH] [--out docs/images]

It drives the real annotator on the synthetic nuclei volume exactly as a user would: one
positive click per nucleus on the slice showing most nuclei, segment, propagate both ways,
then paint a correction. It writes:

- ``annotator.png``: the widget docked beside the propagated volume;
- ``confidence.png``: the review panel (per-frame confidence of one nucleus);
- ``correction.png``: a correction being painted, waiting to be accepted.

and prints the Dice of the propagated nuclei against the ground truth.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch

NUCLEI = 3
WINDOW = (1560, 940)


def wait_for_run(app, widget, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while widget.run is not None:
        if time.monotonic() > deadline:
            raise TimeoutError("the engine run did not finish in time")
        app.processEvents()
        time.sleep(0.01)
    for _ in range(5):
        app.processEvents()


def settle(app, seconds: float = 0.3) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def largest_inner_objects(labels: np.ndarray, count: int, margin: int) -> list[int]:
    """Ids of the ``count`` largest objects that stay ``margin`` pixels off the border."""
    inner = np.zeros_like(labels, dtype=bool)
    inner[margin:-margin, margin:-margin] = True
    sizes = {}
    for obj_id in np.unique(labels[labels > 0]):
        mask = labels == obj_id
        if not (mask & ~inner).any():
            sizes[int(obj_id)] = int(mask.sum())
    return sorted(sizes, key=sizes.get, reverse=True)[:count]


def worst_frame(predicted: np.ndarray, truth: np.ndarray, confirmed: set[int]) -> int:
    """The unconfirmed slice where the object is present and the prediction's Dice lowest."""
    candidates = [
        (dice(predicted[f], truth[f]), f)
        for f in range(truth.shape[0])
        if truth[f].sum() > 30 and f not in confirmed
    ]
    return min(candidates)[1]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="samed2-nano", help="registry name or checkpoint")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--box", action="store_true", help="also draw a box around each nucleus (not just click)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_samed2.model import load_model
    from napari_samed2.ui import SAMed2Widget, nuclei_volume_sample

    args.out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari · SAMed-2", show=True)
    app = QApplication.instance()
    viewer.window.resize(*WINDOW)
    (image, image_meta, _), (truth, truth_meta, _) = nuclei_volume_sample()
    layer = viewer.add_image(image, **image_meta)
    viewer.add_labels(truth, **truth_meta)
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget, name="SAMed-2 annotator", area="right")
    widget.set_model(load_model(args.model, "cpu", progressbar=False))
    widget.select_image(layer)

    # one click in the middle of each of the largest nuclei, on the slice that shows most
    middle = max(
        range(4, image.shape[0] - 4),
        key=lambda f: sum(
            int((truth[f] == i).sum()) for i in largest_inner_objects(truth[f], NUCLEI, 8)
        ),
    )
    chosen = largest_inner_objects(truth[middle], NUCLEI, margin=8)
    widget.go_to_frame(middle)
    objects = {}
    for number, truth_id in enumerate(chosen, start=1):
        obj_id = widget.add_object(f"nucleus {number}")
        rows, cols = np.nonzero(truth[middle] == truth_id)
        centre = np.array([rows.mean(), cols.mean()])
        # the pixel of the nucleus nearest its centroid (the centroid may fall outside)
        nearest = np.argmin((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2)
        widget.start_points()
        widget.state.points.add([middle, rows[nearest], cols[nearest]])
        if args.box:
            r0, c0, r1, c1 = rows.min() - 2, cols.min() - 2, rows.max() + 2, cols.max() + 2
            corners = [(r0, c0), (r0, c1), (r1, c1), (r1, c0)]
            widget.state.boxes.add_rectangles([[middle, r, c] for r, c in corners])
        widget.segment_frame()
        wait_for_run(app, widget)
        objects[obj_id] = truth_id
    started = time.perf_counter()
    widget.propagate_both()
    wait_for_run(app, widget)
    seconds = time.perf_counter() - started
    labels = widget.state.labels
    scores = {
        obj_id: dice(labels.data == obj_id, truth == truth_id)
        for obj_id, truth_id in objects.items()
    }
    print(f"propagated {image.shape[0]} slices x {len(objects)} nuclei in {seconds:.1f} s")
    for obj_id, score in scores.items():
        print(f"  nucleus {obj_id}: Dice {score:.3f} against the ground truth")

    widget.object_list.select(1)
    widget.go_to_frame(middle + 3)
    viewer.layers.selection.active = labels
    viewer.reset_view()
    settle(app, 0.5)
    save_png(viewer.screenshot(canvas_only=False, flash=False), args.out / "annotator.png")

    review = widget.confidence.parentWidget()
    save_png(qimage_to_array(review.grab().toImage()), args.out / "confidence.png")

    # a correction in progress: on the slice where nucleus 1 is worst (against the ground
    # truth), paint the part the model missed, and leave it waiting for "Accept"
    frame = worst_frame(labels.data == 1, truth == objects[1], widget.state.confirmed()[1])
    widget.go_to_frame(frame)
    missed = (truth[frame] == objects[1]) & (labels.data[frame] == 0)
    labels.selected_label = 1
    labels.brush_size = 5
    labels.mode = "paint"
    rows, cols = np.nonzero(missed)
    step = max(1, rows.size // 40)
    for row, col in zip(rows[::step], cols[::step], strict=True):
        labels.paint((frame, int(row), int(col)), 1)
    print(f"correction painted on slice {frame}: {widget.status.text()}")
    settle(app, 0.5)
    save_png(viewer.screenshot(canvas_only=False, flash=False), args.out / "correction.png")
    viewer.close()
    return 0


def save_png(picture: np.ndarray, path: Path) -> None:
    from PIL import Image

    from napari_samed2.atomic import write_bytes_atomic

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", optimize=True)
    write_bytes_atomic(path, buffer.getvalue())
    print(f"wrote {path}")


def qimage_to_array(image) -> np.ndarray:
    from qtpy.QtGui import QImage

    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), dtype=np.uint8)
    return data.reshape(height, image.bytesPerLine() // 4, 4)[:, :width].copy()


if __name__ == "__main__":
    raise SystemExit(main())
