"""The label set's store: create/open/add/remove/entries/summary, the files it writes (readable
without our code), provenance, and the format version."""

from __future__ import annotations

import datetime
import getpass
import hashlib
import json

import numpy as np
import pytest
import tifffile

from napari_samed2.labelset import (
    FORMAT,
    VERSION,
    LabelSet,
    LabelSetError,
    LabelSetVersionError,
    ObjectRecord,
    model_record,
)


def _frame(shape=(30, 40), dtype=np.uint16, seed=0):
    rng = np.random.default_rng(seed)
    image = (rng.random(shape) * 1000).astype(dtype)
    labels = np.zeros(shape[:2], np.int32)  # napari's Labels dtype
    labels[2:9, 3:12] = 4
    labels[15:25, 20:35] = 9
    return image, labels


def test_create_writes_a_manifest_other_tools_can_read(tmp_path):
    labelset = LabelSet.create(tmp_path / "set", name="nuclei", description="test")
    manifest = json.loads((tmp_path / "set" / "labelset.json").read_text())
    assert manifest["format"] == FORMAT == "napari-samed2-labelset"
    assert manifest["version"] == VERSION == 1
    assert (manifest["name"], manifest["description"]) == ("nuclei", "test")
    created = datetime.datetime.fromisoformat(manifest["created"].replace("Z", "+00:00"))
    age = datetime.datetime.now(datetime.timezone.utc) - created
    assert abs(age.total_seconds()) < 60
    assert len(labelset) == 0 and labelset.entries() == []
    assert LabelSet.open(tmp_path / "set").name == "nuclei"


def test_create_refuses_an_existing_set_or_a_folder_with_files(tmp_path):
    LabelSet.create(tmp_path / "set")
    with pytest.raises(FileExistsError, match="already exists"):
        LabelSet.create(tmp_path / "set")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        LabelSet.create(tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_an_entry_on_disk_is_tiff_and_json(labelset):
    image, labels = _frame()
    entry = labelset.add(image, labels, source={"kind": "layer", "name": "cells", "frame": 3})
    folder = labelset.path / "entries" / "000001"
    assert sorted(p.name for p in folder.iterdir()) == ["entry.json", "image.tif", "labels.tif"]
    on_disk = tifffile.imread(folder / "image.tif")
    assert on_disk.dtype == np.uint16
    np.testing.assert_array_equal(on_disk, image)
    stored = tifffile.imread(folder / "labels.tif")
    assert stored.dtype == np.uint8  # int32 in: the smallest dtype that holds id 9
    np.testing.assert_array_equal(stored, labels)
    record = json.loads((folder / "entry.json").read_text())
    assert record["id"] == entry.id == 1
    assert record["image"] == {"file": "image.tif"}
    assert record["shape"] == [30, 40] and record["dtype"] == "uint16"
    assert record["channels"] is None and record["complete"] is True
    assert [o["id"] for o in record["objects"]] == [4, 9]
    assert {o["origin"] for o in record["objects"]} == {"imported"}
    assert record["source"]["frame"] == 3 == entry.frame
    assert record["user"] == getpass.getuser()
    assert record["time"].endswith("Z")


def test_entries_read_back_with_their_objects_and_masks(labelset):
    model = model_record("samed2-nano", sha256="ab" * 32)
    image, labels = _frame()
    objects = [
        ObjectRecord(4, "predicted", 0.93, model, {"points": [[5, 6]], "labels": [1]}),
        ObjectRecord(9, "corrected", None, None, {"points": [], "box": [14, 19, 26, 36]}),
    ]
    labelset.add(image, labels, objects=objects, complete=False)
    [entry] = LabelSet.open(labelset.path).entries()
    assert entry.complete is False
    assert entry.objects[0] == ObjectRecord(
        4, "predicted", 0.93, model, {"points": [[5.0, 6.0]], "labels": [1], "box": None}
    )
    assert entry.objects[1].prompts["box"] == [14.0, 19.0, 26.0, 36.0]
    assert entry.mask(9).sum() == 150
    np.testing.assert_array_equal(entry.mask(4), labels == 4)
    with pytest.raises(KeyError, match="no object 5"):
        entry.mask(5)


def test_model_record_hashes_the_weights_file(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights" * 1000)
    record = model_record("mine", weights=weights)
    assert record == {"name": "mine", "sha256": hashlib.sha256(b"weights" * 1000).hexdigest()}


@pytest.mark.parametrize(
    ("label_dtype", "highest", "stored"),
    [
        (np.uint8, 7, np.uint8),
        (np.uint16, 7, np.uint16),  # unsigned input keeps its bit depth
        (np.uint32, 70_000, np.uint32),
        (np.int32, 300, np.uint16),
        (np.int64, 70_000, np.uint32),
        (bool, 1, np.uint8),
    ],
)
def test_labels_dtype(labelset, label_dtype, highest, stored):
    labels = np.zeros((8, 8), label_dtype)
    labels[2:4, 2:4] = highest
    entry = labelset.add(np.ones((8, 8), np.float32), labels)
    assert entry.labels().dtype == stored
    assert entry.object_ids == [highest]


def test_remove_and_ids(labelset):
    for seed in range(3):
        labelset.add(*_frame(seed=seed))
    labelset.remove(2)
    assert labelset.ids() == [1, 3]
    assert [e.id for e in labelset.entries()] == [1, 3]
    assert labelset.add(*_frame()).id == 4  # max + 1
    with pytest.raises(KeyError, match="no entry 2"):
        labelset.entry(2)
    with pytest.raises(KeyError, match="no entry 7"):
        labelset.remove(7)
    assert not [p for p in (labelset.path / "entries").iterdir() if p.name.startswith(".")]


def test_summary_counts(labelset):
    image, labels = _frame()
    for frame in (0, 1):
        source = {"kind": "file", "name": "a.tif", "path": "/d/a.tif", "axis": 0, "frame": frame}
        labelset.add(image, labels, source=source)
    labelset.add(image, labels, complete=False, source={"kind": "layer", "name": "b"})
    labelset.add(np.zeros((5, 6, 3), np.uint8), np.ones((5, 6), np.uint8))
    summary = labelset.summary()
    assert summary["entries"] == 4 and summary["complete"] == 3
    assert summary["masks"] == 7
    assert summary["objects"] == 5  # ids 4 and 9 of a.tif, of b, and id 1 of the unnamed layer
    assert summary["shapes"] == {"30x40 uint16": 3, "5x6x3 uint8": 1}
    assert summary["origins"] == {"imported": 7}
    frames = {(s["kind"], s["name"]): s["frames"] for s in summary["sources"]}
    assert frames == {("file", "a.tif"): 2, ("layer", "b"): 1, ("layer", None): 1}
    files = sum(p.stat().st_size for p in labelset.path.rglob("*") if p.is_file())
    assert summary["bytes"] == files


def test_a_newer_format_version_is_refused(labelset):
    manifest = labelset.path / "labelset.json"
    record = json.loads(manifest.read_text())
    record["version"] = VERSION + 1
    manifest.write_text(json.dumps(record))
    with pytest.raises(LabelSetVersionError) as refused:
        LabelSet.open(labelset.path)
    message = str(refused.value)
    assert f"format version {VERSION + 1}" in message
    assert f"reads version {VERSION}" in message and "upgrade" in message
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "is not valid JSON"),
        ('{"format": "zarr", "version": 1}', "format 'zarr' is not 'napari-samed2-labelset'"),
        ('{"format": "napari-samed2-labelset", "version": "1"}', "version '1' is not a positive"),
        ("[1, 2]", r"format \[1, 2\] is not"),
    ],
)
def test_a_corrupt_manifest_is_named(labelset, content, match):
    (labelset.path / "labelset.json").write_text(content)
    with pytest.raises(LabelSetError, match=match) as refused:
        LabelSet.open(labelset.path)
    assert "labelset.json" in str(refused.value)


def test_opening_what_is_not_a_set(tmp_path):
    with pytest.raises(LabelSetError, match="no such folder"):
        LabelSet.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(LabelSetError, match="has no labelset.json"):
        LabelSet.open(tmp_path / "plain")


def test_frames_beyond_classic_tiff_are_written_as_bigtiff(labelset, monkeypatch):
    from napari_samed2.labelset import tiff

    small, large = np.ones((16, 16), np.uint16), np.ones((64, 64), np.uint16)
    monkeypatch.setattr(tiff, "BIGTIFF_BYTES", small.nbytes)  # 4 GiB frames, scaled down
    labelset.add(small, np.ones((16, 16), np.uint8))
    labelset.add(large, np.ones((64, 64), np.uint8))
    kinds = []
    for entry in labelset.entries():
        with tifffile.TiffFile(entry.directory / "image.tif") as written:
            kinds.append(written.is_bigtiff)
    assert kinds == [False, True]
    np.testing.assert_array_equal(labelset.entry(2).image(), large)
