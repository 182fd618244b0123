"""Overlays of a model's one-click masks on scikit-image's `cell`, `coins` and `retina`.

Usage: python scripts/nano_overlays.py [--model samed2-nano] [--out docs/images] [--zoom]
Writes <out>/<model>_<image>.png (``_zoom`` added with --zoom): the image, each clicked object's
mask (colour, outlined) and the click (white cross). Every mask comes from the engine, one
positive click per object; --zoom gives each object its own region (PropagationSession(zoom=)).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage import data, filters, measure, segmentation
from skimage.io import imsave

from napari_samed2.atomic import atomic_path
from napari_samed2.engine import PropagationSession
from napari_samed2.model import load_model

MAX_SIDE = 720  # pixels: larger overlays are subsampled for the docs
COLOURS = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]], np.float32,
)  # fmt: skip


def coin_clicks(image: np.ndarray) -> list[tuple[int, int]]:
    """One click per coin, where a user would put it: the most interior pixel of each blob."""
    smooth = filters.gaussian(image, 2)
    mask = ndi.binary_fill_holes(smooth > filters.threshold_otsu(smooth))
    clicks = []
    for region in measure.regionprops(measure.label(mask)):
        if region.area < 200:  # specks of the background, not coins
            continue
        distance = ndi.distance_transform_edt(np.pad(region.image, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(np.argmax(distance), distance.shape)
        clicks.append((region.bbox[0] + int(y), region.bbox[1] + int(x)))
    return clicks


def overlay(image: np.ndarray, masks: list[np.ndarray], clicks) -> np.ndarray:
    rgb = image.astype(np.float32)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    rgb = rgb[:, :, :3] / max(1.0, float(rgb.max())) * 255
    for index, mask in enumerate(masks):
        colour = COLOURS[index % len(COLOURS)]
        rgb[mask] = 0.55 * rgb[mask] + 0.45 * colour
        edge = segmentation.find_boundaries(mask, mode="inner")
        rgb[edge] = colour
    size = max(3, image.shape[0] // 120)
    for row, col in clicks:
        rgb[max(0, row - size) : row + size + 1, col] = 255
        rgb[row, max(0, col - size) : col + size + 1] = 255
    return np.clip(rgb, 0, 255).astype(np.uint8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="samed2-nano")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--zoom", action="store_true", help="each object in its own region")
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    coins = data.coins()
    cases = {
        "cell": (data.cell(), [(375, 428)]),
        "coins": (coins, coin_clicks(coins)),
        "retina": (data.retina(), [(646, 226), (705, 705)]),
    }
    stem = Path(args.model).stem
    for name, (image, clicks) in cases.items():
        session = PropagationSession(model, image, axis=0, memory="selective", zoom=args.zoom)
        masks = []
        for obj_id, (row, col) in enumerate(clicks, start=1):
            result = session.add_points(0, obj_id, [[row, col]], [1])
            masks.append(result.masks[obj_id])
            print(f"{name} object {obj_id}: {int(result.masks[obj_id].sum())} px, "
                  f"confidence {result.confidence[obj_id]:.2f}")  # fmt: skip
        session.close()
        path = args.out / f"{stem}_{name}{'_zoom' if args.zoom else ''}.png"
        picture = overlay(image, masks, clicks)
        if max(picture.shape[:2]) > MAX_SIDE:  # keep the docs' pictures small
            step = int(np.ceil(max(picture.shape[:2]) / MAX_SIDE))
            picture = picture[::step, ::step]
        with atomic_path(path) as temporary:
            # imsave picks the format from the suffix; the atomic temporary name has none.
            imsave(temporary.with_suffix(".png"), picture, check_contrast=False)
            temporary.with_suffix(".png").replace(temporary)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
