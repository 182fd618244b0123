"""The napari reader: a label-set folder opens as Image and Labels layers, in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest
from npe2 import PluginManifest

from napari_samed2.labelset import LabelSet, LabelSetError
from napari_samed2.labelset.reader import get_reader, read_labelset


def _fill(labelset: LabelSet) -> list[tuple[np.ndarray, np.ndarray]]:
    """Three 20x24 uint16 entries (one with id 300, stored uint16) and one 8x8 float32."""
    frames = []
    for i in range(3):
        image = np.full((20, 24), 100 * i, np.uint16)
        labels = np.zeros((20, 24), np.uint8 if i < 2 else np.uint16)
        labels[i : i + 5, 2:9] = 1 if i < 2 else 300
        labelset.add(image, labels)
        frames.append((image, labels))
    small = (np.arange(64, dtype=np.float32).reshape(8, 8), np.eye(8, dtype=np.uint8))
    labelset.add(*small)
    return [*frames, small]


def test_get_reader_takes_only_label_sets(labelset, tmp_path):
    assert get_reader(str(labelset.path)) is read_labelset
    assert get_reader(str(labelset.path / "labelset.json")) is read_labelset
    assert get_reader([str(labelset.path)]) is read_labelset
    (tmp_path / "plain").mkdir()
    assert get_reader(str(tmp_path / "plain")) is None
    assert get_reader(str(tmp_path / "image.tif")) is None
    assert get_reader([str(labelset.path), str(tmp_path / "plain")]) is None


def test_entries_of_one_shape_are_stacked_and_others_grouped(labelset):
    frames = _fill(labelset)
    layers = read_labelset(str(labelset.path))
    assert [(kwargs["name"], kind) for _, kwargs, kind in layers] == [
        ("cells (20x24 uint16)", "image"),
        ("cells (20x24 uint16) labels", "labels"),
        ("cells (8x8 float32)", "image"),
        ("cells (8x8 float32) labels", "labels"),
    ]
    (image, meta, _), (labels, _, _) = layers[:2]
    assert image.shape == (3, 20, 24) and image.dtype == np.uint16
    assert labels.dtype == np.uint16  # uint8 and uint16 entries, stacked as uint16
    np.testing.assert_array_equal(labels, np.stack([lab for _, lab in frames[:3]]))
    assert meta["metadata"] == {"labelset": str(labelset.path), "entries": [1, 2, 3]}
    np.testing.assert_array_equal(layers[2][0][0], frames[3][0])


def test_an_empty_set_says_so(labelset):
    with pytest.raises(LabelSetError, match="has no entries yet: nothing to show"):
        read_labelset(str(labelset.path))


def test_the_manifest_contributes_the_reader():
    manifest = PluginManifest.from_distribution("napari-samed2")
    [reader] = manifest.contributions.readers
    assert reader.accepts_directories
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands[reader.command] == "napari_samed2.labelset.reader:get_reader"


@pytest.mark.gui
def test_napari_opens_a_label_set(make_napari_viewer, labelset):
    for i in range(2):
        labels = np.zeros((20, 24), np.uint8)
        labels[i : i + 5, 2:9] = i + 1
        labelset.add(np.full((20, 24), 7 * i, np.uint16), labels)
    viewer = make_napari_viewer()
    viewer.open(str(labelset.path), plugin="napari-samed2")
    assert [layer.name for layer in viewer.layers] == ["cells", "cells labels"]
    image, labels = viewer.layers
    assert (type(image).__name__, type(labels).__name__) == ("Image", "Labels")
    assert image.data.shape == (2, 20, 24) and image.data[1, 0, 0] == 7
    assert np.unique(labels.data).tolist() == [0, 1, 2]
    assert labels.metadata["entries"] == [1, 2]


@pytest.mark.gui
def test_napari_opens_a_mixed_set_as_one_pair_per_group(make_napari_viewer, labelset):
    _fill(labelset)
    labelset.add(np.zeros((8, 8, 3), np.uint8), np.eye(8, dtype=np.uint8))
    viewer = make_napari_viewer()
    viewer.open(str(labelset.path / "labelset.json"), plugin="napari-samed2")
    assert [layer.name for layer in viewer.layers] == [
        "cells (20x24 uint16)",
        "cells (20x24 uint16) labels",
        "cells (8x8 float32)",
        "cells (8x8 float32) labels",
        "cells (8x8x3 uint8)",
        "cells (8x8x3 uint8) labels",
    ]
    assert viewer.layers["cells (8x8x3 uint8)"].rgb
    assert viewer.layers["cells (20x24 uint16) labels"].data.shape == (3, 20, 24)
