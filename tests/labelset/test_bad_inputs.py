"""Every bad input gets an error naming the value and what is accepted, and writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_samed2.labelset import (
    ImageReference,
    LabelSetError,
    ObjectRecord,
    import_pairs,
    import_stack,
)


def _labels(shape=(10, 12), dtype=np.uint16):
    labels = np.zeros(shape, dtype)
    labels[2:5, 3:7] = 1
    return labels


IMAGE = np.ones((10, 12), np.float32)


@pytest.mark.parametrize(
    ("image", "labels", "match"),
    [
        (
            IMAGE,
            _labels((10, 13)),
            r"labels have shape \(10, 13\) but the image frame is \(10, 12\)",
        ),
        (IMAGE, _labels(dtype=np.float32), "labels have dtype float32: label ids must be integers"),
        (IMAGE, -_labels(dtype=np.int16) * 3, r"negative id \(-3\)"),
        (IMAGE, _labels(dtype=np.int64) * 2**32, "id 4294967296, which does not fit uint32"),
        (np.where(np.eye(10, 12), np.nan, 1.0), _labels(), r"non-finite value \(nan\) at \(0, 0\)"),
        (np.ones((0, 12)), np.zeros((0, 12), np.uint8), r"image is empty \(shape \(0, 12\)\)"),
        (np.ones((2, 10, 12, 3)), _labels(), r"image has shape \(2, 10, 12, 3\): expected one"),
        (np.ones((10, 12), complex), _labels(), "image has dtype complex128"),
        (None, _labels(), r"image is missing \(None\)"),
    ],
)
def test_add_refuses_bad_frames(labelset, image, labels, match):
    with pytest.raises(ValueError, match=match):
        labelset.add(image, labels)
    assert labelset.ids() == [] and not list((labelset.path / "entries").iterdir())


@pytest.mark.parametrize(
    ("objects", "match"),
    [
        ([], r"labels hold ids \[1\] that have no object record"),
        ([ObjectRecord(1), ObjectRecord(2)], r"objects \[2\] have no pixels"),
        ([{"id": 1}, {"id": 1}], r"objects name ids \[1\] more than once"),
        ([{"id": 1, "origin": "guessed"}], "origin 'guessed' is not one of"),
        ([{"id": 1, "confidence": 1.5}], r"confidence 1.5 is not in \[0, 1\]"),
        ([{"id": 1, "model": {"name": "m", "sha256": "short"}}], "sha256 'short' is not 64"),
        ([{"id": 1, "prompts": {"points": [[1, 2]], "labels": [2]}}], "must be 1 .* or 0"),
    ],
)
def test_add_refuses_bad_object_records(labelset, objects, match):
    with pytest.raises(ValueError, match=match):
        labelset.add(IMAGE, _labels(), objects=objects)


def test_a_missing_or_corrupt_entry_json_is_named(labelset):
    for _ in range(3):
        labelset.add(IMAGE, _labels())
    (labelset.path / "entries" / "000002" / "entry.json").unlink()
    with pytest.raises(LabelSetError, match=r"000002/entry.json' is missing"):
        labelset.entries()
    (labelset.path / "entries" / "000002" / "entry.json").write_text('{"id": 2, "image"')
    with pytest.raises(LabelSetError, match=r"000002/entry.json' is not valid JSON"):
        labelset.entries()
    record = json.loads((labelset.path / "entries" / "000001" / "entry.json").read_text())
    record["id"] = 2
    del record["complete"]
    (labelset.path / "entries" / "000002" / "entry.json").write_text(json.dumps(record))
    with pytest.raises(LabelSetError, match="field 'complete' is missing"):
        labelset.entry(2)
    assert labelset.entry(3).labels().sum() == 12  # the others still read


def test_missing_files_of_an_entry_are_named(labelset):
    entry = labelset.add(IMAGE, _labels())
    (entry.directory / "image.tif").unlink()
    with pytest.raises(FileNotFoundError, match=r"entry 1: its image file .*image.tif' is missing"):
        entry.image()


def test_a_referenced_source_that_vanished_or_changed(labelset, tmp_path):
    stack = np.arange(3 * 10 * 12, dtype=np.uint16).reshape(3, 10, 12)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack)
    entry = labelset.add(None, _labels(), reference=ImageReference(str(path), 0, 1))
    assert not (entry.directory / "image.tif").exists()
    np.testing.assert_array_equal(labelset.entry(1).image(), stack[1])
    tifffile.imwrite(path, np.concatenate([stack, stack]))
    with pytest.raises(LabelSetError, match="changed since it was added"):
        labelset.entry(1).image()
    path.unlink()
    with pytest.raises(FileNotFoundError, match=f"references '{path}', which no longer exists"):
        labelset.entry(1).image()
    with pytest.raises(FileNotFoundError, match="referenced image .* does not exist"):
        labelset.add(None, _labels(), reference=ImageReference(str(path), 0, 1))


def test_a_reference_that_differs_from_the_image_given(labelset, tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((2, 10, 12), np.uint16))
    with pytest.raises(ValueError, match="image differs from the frame it references"):
        labelset.add(np.ones((10, 12), np.uint16), _labels(), reference=ImageReference(path, 0, 0))
    with pytest.raises(LabelSetError, match=r"index \(5,\) does not fit its shape \(2, 10, 12\)"):
        labelset.add(None, _labels(), reference=ImageReference(path, 0, 5))


def test_import_stack_bad_inputs(labelset, tmp_path):
    image, labels = tmp_path / "image.tif", tmp_path / "labels.tif"
    tifffile.imwrite(image, np.ones((4, 10, 12), np.uint8))
    tifffile.imwrite(labels, np.zeros((4, 10, 11), np.uint8))
    with pytest.raises(FileNotFoundError, match="image file .*nope.tif' does not exist"):
        import_stack(labelset, tmp_path / "nope.tif", labels)
    with pytest.raises(
        ValueError, match=r"image shape \(4, 10, 12\) and labels shape \(4, 10, 11\)"
    ):
        import_stack(labelset, image, labels)
    tifffile.imwrite(labels, np.zeros((4, 10, 12), np.float32))
    with pytest.raises(ValueError, match="image.tif: frame 2 .*labels have dtype float32"):
        import_stack(labelset, image, labels, frames=[2])
    tifffile.imwrite(labels, np.zeros((4, 10, 12), np.uint8))
    with pytest.raises(ValueError, match=r"frames \[4, 9\] are outside 0..3 along axis 0"):
        import_stack(labelset, image, labels, frames=[1, 4, 9])
    with pytest.raises(ValueError, match="axis 1 is not a frame axis"):
        import_stack(labelset, image, labels, axis=1)
    assert labelset.ids() == []


def test_import_pairs_bad_inputs(labelset, tmp_path):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    with pytest.raises(ValueError, match="no image/mask pairs in .*NAME_masks.tif"):
        import_pairs(labelset, pairs)
    tifffile.imwrite(pairs / "a_masks.tif", _labels())
    with pytest.raises(FileNotFoundError, match=r"a_masks.tif' has no image: expected '.*/a.tif'"):
        import_pairs(labelset, pairs)
    tifffile.imwrite(pairs / "a.tif", np.ones((10, 13), np.uint16))
    with pytest.raises(ValueError, match=r"has shape \(10, 12\) but its image .*a.tif' has shape"):
        import_pairs(labelset, pairs)
    tifffile.imwrite(pairs / "a.tif", np.ones((10, 12), np.uint16))
    tifffile.imwrite(pairs / "a_masks.tif", -_labels(dtype=np.int32))
    with pytest.raises(ValueError, match=r"a.tif' with .*a_masks.tif': labels hold a negative id"):
        import_pairs(labelset, pairs)
    (pairs / "a_masks.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="cannot read .*a_masks.tif' as a TIFF image"):
        import_pairs(labelset, pairs)
    with pytest.raises(FileNotFoundError, match="pairs folder .*elsewhere' does not exist"):
        import_pairs(labelset, tmp_path / "elsewhere")
    assert labelset.ids() == []


def test_the_subfolder_layout_needs_masks(labelset, tmp_path):
    (tmp_path / "pairs" / "images").mkdir(parents=True)
    with pytest.raises(ValueError, match="has images/ but no masks/ or labels/ folder"):
        import_pairs(labelset, tmp_path / "pairs")
    (tmp_path / "pairs" / "masks").mkdir()
    tifffile.imwrite(tmp_path / "pairs" / "masks" / "x.tif", _labels())
    with pytest.raises(FileNotFoundError, match=r"masks/x.tif' has no image: expected '.*images/x"):
        import_pairs(labelset, tmp_path / "pairs")
