"""The npe2 manifest and the sample data it contributes."""

from __future__ import annotations

import numpy as np
import pytest
from npe2 import PluginManifest

from napari_samed2.ui.samples import (
    moving_cells_sample,
    nuclei_volume_sample,
    skimage_cell_sample,
)


def test_manifest_contributes_widget_menu_and_samples():
    manifest = PluginManifest.from_distribution("napari-samed2")
    commands = {command.id: command.python_name for command in manifest.contributions.commands}
    assert commands["napari-samed2.annotator"] == "napari_samed2.ui.widget:SAMed2Widget"
    assert commands["napari-samed2.finetuning"] == "napari_samed2.ui.finetune_panel:FinetunePanel"
    assert [w.command for w in manifest.contributions.widgets] == [
        "napari-samed2.annotator",
        "napari-samed2.finetuning",
    ]
    assert {s.key for s in manifest.contributions.sample_data} == {
        "nuclei-volume",
        "moving-cells",
        "cell",
    }
    segment_menu = manifest.contributions.menus["napari/layers/segment"]
    assert [item.command for item in segment_menu] == ["napari-samed2.annotator"]


def test_synthetic_samples_come_with_ground_truth():
    for sample, axis_label in ((nuclei_volume_sample, "z"), (moving_cells_sample, "t")):
        (image, image_meta, image_type), (labels, labels_meta, labels_type) = sample()
        assert (image_type, labels_type) == ("image", "labels")
        assert image.shape == labels.shape == (24, 128, 128)
        assert image_meta["axis_labels"][0] == axis_label
        assert labels_meta["name"].endswith("ground truth")
        assert len(np.unique(labels)) > 3  # several objects
        assert image[labels > 0].mean() > image[labels == 0].mean()  # objects are bright


def test_skimage_cell_sample():
    [(image, meta, kind)] = skimage_cell_sample()
    assert kind == "image" and image.ndim == 2 and image.dtype == np.uint8
    assert meta["name"] == "cell"


@pytest.mark.gui
def test_napari_opens_the_widget_and_the_samples_through_the_manifest(make_napari_viewer):
    from napari_samed2.ui import SAMed2Widget

    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-samed2", "SAMed-2 annotator")
    assert isinstance(widget, SAMed2Widget)
    viewer.open_sample("napari-samed2", "moving-cells")
    assert [layer.name for layer in viewer.layers] == ["moving cells", "moving cells ground truth"]
    # the widget picked up the new image and inferred a time axis from the axis labels
    assert widget.state.image is viewer.layers["moving cells"]
    assert widget.axis_combo.currentText().startswith("T · axis 0 ('t', 24 frames)")
