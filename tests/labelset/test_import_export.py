"""Import from layers, stacks and TIFF pairs; export to TIFF pairs; round trips keep bit depth."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_samed2.labelset import (
    LabelSet,
    export_pairs,
    find_pairs,
    import_layer,
    import_pairs,
    import_stack,
)


def _stack(frames=6, shape=(20, 24), seed=0):
    """A uint16 stack; object 1 on frames 1-3, object 2 on frames 2-4, object 5 on frame 4."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 4000, (frames, *shape), dtype=np.uint16)
    labels = np.zeros((frames, *shape), np.int32)
    labels[1:4, 2:8, 2:8] = 1
    labels[2:5, 10:18, 12:20] = 2
    labels[4, 0:3, 0:3] = 5
    return image, labels


def test_layer_import_without_frames_takes_every_labelled_frame(labelset):
    image, labels = _stack()
    report = import_layer(labelset, image, labels, image_name="cells", labels_name="cells gt")
    assert report.entries == [1, 2, 3, 4]
    assert report.masks == 1 + 2 + 2 + 2
    assert report.skipped == ["2 frames without any label"]
    entries = labelset.entries()
    assert [e.frame for e in entries] == [1, 2, 3, 4]
    assert [e.object_ids for e in entries] == [[1], [1, 2], [1, 2], [2, 5]]
    assert all(e.complete for e in entries)
    assert entries[0].source == {
        "kind": "layer",
        "name": "cells",
        "path": None,
        "axis": 0,
        "frame": 1,
        "position": [],
        "labels": "cells gt",
    }
    for entry in entries:
        np.testing.assert_array_equal(entry.image(), image[entry.frame])
        np.testing.assert_array_equal(entry.labels(), labels[entry.frame])


def test_listed_frames_are_imported_complete_even_without_labels(labelset):
    image, labels = _stack()
    report = import_layer(labelset, image, labels, image_name="cells", frames=[0, 4, 2])
    assert report.entries == [1, 2, 3] and report.skipped == []
    entries = labelset.entries()
    assert [e.frame for e in entries] == [0, 2, 4]
    # frame 0: every object of the stack is absent; frame 4: object 1 is absent
    assert [e.object_ids for e in entries] == [[], [1, 2], [2, 5]]
    assert all(e.complete for e in entries)


def test_layer_import_of_a_2d_frame_and_of_rgb(labelset):
    image, labels = _stack()
    import_layer(labelset, image[2], labels[2], image_name="one")
    rgb = np.stack([image[3].astype(np.uint8)] * 3, axis=-1)
    import_layer(labelset, rgb, labels[3], image_name="rgb")
    one, colour = labelset.entries()
    assert (one.frame, one.source["axis"], one.source["position"]) == (None, None, None)
    assert colour.channels == 3
    np.testing.assert_array_equal(colour.image(), rgb)


def test_a_4d_stack_imports_every_position_on_the_other_axis(labelset):
    image, labels = _stack()
    image4, labels4 = np.stack([image, image + 1]), np.stack([labels, labels])  # (2, 6, Y, X)
    report = import_layer(labelset, image4, labels4, image_name="tzyx", axis=1, frames=[2])
    assert len(report.entries) == 2
    first, second = labelset.entries()
    assert (first.source["position"], second.source["position"]) == ([0], [1])
    assert first.frame == second.frame == 2
    np.testing.assert_array_equal(second.image(), image4[1, 2])


def test_import_stack_from_files_copies_or_references(labelset, tmp_path):
    image, labels = _stack()
    tifffile.imwrite(tmp_path / "stack.tif", image)
    np.save(tmp_path / "labels.npy", labels)
    import_stack(labelset, tmp_path / "stack.tif", tmp_path / "labels.npy", frames=[1, 3])
    import_stack(
        labelset, tmp_path / "stack.tif", tmp_path / "labels.npy", frames=[4], reference=True
    )
    copied, _, referenced = labelset.entries()
    assert copied.source["kind"] == "file" and copied.source["name"] == "stack.tif"
    assert copied.source["path"] == str((tmp_path / "stack.tif").resolve())
    assert copied.reference is None and referenced.reference.index == 4
    assert not (referenced.directory / "image.tif").exists()
    np.testing.assert_array_equal(referenced.image(), image[4])
    np.testing.assert_array_equal(copied.image(), image[1])


def _write_pairs(folder, images, masks, layout):
    if layout == "subfolders":
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
    else:
        folder.mkdir(parents=True)
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        if layout == "subfolders":
            tifffile.imwrite(folder / "images" / f"img{i}.tif", image)
            tifffile.imwrite(folder / "masks" / f"img{i}.tif", mask)
        else:
            tifffile.imwrite(folder / f"img{i}.tif", image)
            tifffile.imwrite(folder / f"img{i}{layout}.tif", mask)


@pytest.mark.parametrize("image_dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize(
    ("label_dtype", "highest"), [(np.uint8, 200), (np.uint16, 300), (np.uint32, 70_000)]
)
def test_pairs_round_trip_keeps_bit_depth(tmp_path, image_dtype, label_dtype, highest):
    rng = np.random.default_rng(1)
    info = np.finfo if np.dtype(image_dtype).kind == "f" else np.iinfo
    images = [
        (rng.random((33, 47)) * min(info(image_dtype).max, 1e6)).astype(image_dtype)
        for _ in range(3)
    ]
    masks = [np.zeros((33, 47), label_dtype) for _ in range(3)]
    for i, mask in enumerate(masks):
        mask[i : i + 10, 5:20] = highest - i
        mask[20:30, 30:40] = 1
    _write_pairs(tmp_path / "in", images, masks, "_masks")
    labelset = LabelSet.create(tmp_path / "set")
    report = import_pairs(labelset, tmp_path / "in")
    assert report.entries == [1, 2, 3] and report.masks == 6
    exported = export_pairs(labelset, tmp_path / "out")
    assert [p.name for p in exported.images] == ["000001.tif", "000002.tif", "000003.tif"]
    for i, (image_path, mask_path) in enumerate(zip(exported.images, exported.masks, strict=True)):
        image, mask = tifffile.imread(image_path), tifffile.imread(mask_path)
        assert (image.dtype, mask.dtype) == (np.dtype(image_dtype), np.dtype(label_dtype))
        np.testing.assert_array_equal(image, images[i])
        np.testing.assert_array_equal(mask, masks[i])
    # and the export is itself a pairs folder (images/ + masks/) that imports back exactly
    again = LabelSet.create(tmp_path / "again")
    import_pairs(again, tmp_path / "out")
    for first, second in zip(labelset.entries(), again.entries(), strict=True):
        np.testing.assert_array_equal(first.image(), second.image())
        assert first.labels().dtype == second.labels().dtype == np.dtype(label_dtype)
        np.testing.assert_array_equal(first.labels(), second.labels())


@pytest.mark.parametrize("layout", ["subfolders", "_masks", "_mask", "_labels"])
def test_pair_layouts(tmp_path, layout):
    images = [np.full((8, 9), i, np.uint16) for i in range(3)]
    masks = [np.eye(8, 9, dtype=np.uint16) * (i + 1) for i in range(3)]
    _write_pairs(tmp_path / "in", images, masks, layout)
    tifffile.imwrite(
        tmp_path / "in" / ("images" if layout == "subfolders" else "") / "lonely.tif", images[0]
    )
    pairs, unpaired = find_pairs(tmp_path / "in")
    assert [image.name for image, _ in pairs] == ["img0.tif", "img1.tif", "img2.tif"]
    assert [p.name for p in unpaired] == ["lonely.tif"]
    labelset = LabelSet.create(tmp_path / "set")
    report = import_pairs(labelset, tmp_path / "in")
    assert report.skipped == ["lonely.tif: no mask"]
    assert [e.object_ids for e in labelset.entries()] == [[1], [2], [3]]
    assert labelset.entries()[2].source["kind"] == "pairs"


def test_large_frames_and_channels_first_pairs(tmp_path):
    big = np.arange(1200 * 1100, dtype=np.uint32).reshape(1200, 1100)
    mask = (big % 7 == 0).astype(np.uint16) * 9
    cyx = np.stack([big.astype(np.float32), -big.astype(np.float32)])  # (2, Y, X): cellpose
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "big.tif", cyx)
    tifffile.imwrite(tmp_path / "in" / "big_masks.tif", mask)
    labelset = LabelSet.create(tmp_path / "set")
    import_pairs(labelset, tmp_path / "in")
    [entry] = labelset.entries()
    assert entry.channels == 2 and entry.source["channel_axis"] == 0
    np.testing.assert_array_equal(entry.image(), np.moveaxis(cyx, 0, -1))
    np.testing.assert_array_equal(entry.labels(), mask)


def test_export_refuses_an_empty_set_and_a_used_folder(labelset, tmp_path):
    with pytest.raises(ValueError, match="has no entries to export"):
        export_pairs(labelset, tmp_path / "out")
    labelset.add(np.ones((4, 4), np.uint8), np.eye(4, dtype=np.uint8), complete=False)
    (tmp_path / "out" / "masks").mkdir(parents=True)
    (tmp_path / "out" / "masks" / "keep.tif").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="masks' already holds files"):
        export_pairs(labelset, tmp_path / "out")
    with pytest.raises(ValueError, match="inside the label set"):
        export_pairs(labelset, labelset.path / "export")
    report = export_pairs(labelset, tmp_path / "fresh")
    assert report.incomplete == [1]
