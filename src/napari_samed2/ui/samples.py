"""Sample data for the napari File > Open Sample menu: two synthetic stacks with ground truth,
and scikit-image's bundled ``cell`` image."""

from __future__ import annotations

from typing import Any

LayerData = tuple[Any, dict[str, Any], str]


def nuclei_volume_sample() -> list[LayerData]:
    """A synthetic fluorescence volume (Z, Y, X) of nuclei, with its ground-truth labels."""
    from ..synthetic import nuclei_volume

    sample = nuclei_volume(shape=(24, 128, 128), seed=0)
    return _with_ground_truth(sample, "nuclei volume", ("z", "y", "x"))


def moving_cells_sample() -> list[LayerData]:
    """A synthetic time-lapse (T, Y, X) of moving, dividing cells, with ground-truth labels."""
    from ..synthetic import moving_cells_timelapse

    sample = moving_cells_timelapse(shape=(24, 128, 128), seed=0)
    return _with_ground_truth(sample, "moving cells", ("t", "y", "x"))


def skimage_cell_sample() -> list[LayerData]:
    """scikit-image's bundled ``cell`` image (2-D, 8-bit)."""
    from skimage import data

    return [(data.cell(), {"name": "cell", "colormap": "gray"}, "image")]


def _with_ground_truth(sample, name: str, axis_labels: tuple[str, ...]) -> list[LayerData]:
    image = (
        sample.image,
        {"name": name, "colormap": "gray", "axis_labels": axis_labels},
        "image",
    )
    truth = (
        sample.labels,
        {
            "name": f"{name} ground truth",
            "visible": False,
            "opacity": 0.5,
            "axis_labels": axis_labels,
        },
        "labels",
    )
    return [image, truth]
