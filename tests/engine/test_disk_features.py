"""Encoded frames persist on disk: a later session on the same frames, model, precision, region
and value range runs no encoder and gives the same masks; anything else is a miss; a bad entry
is recomputed, never used."""

from __future__ import annotations

import copy
import logging
import warnings

import numpy as np
import pytest
import torch

import napari_samed2.engine.features as features_module
from napari_samed2.engine import PropagationSession, SessionSettings
from napari_samed2.engine.frames import ConstantFrameWarning
from napari_samed2.model import LoadedModel, Preprocessing, build_model, small_config
from napari_samed2.model.fingerprint import encoder_fingerprint

from .conftest import moving_disk_video, present_object_net


@pytest.fixture
def encoded_images(monkeypatch):
    """How many images the image encoder ran on, in every session (zooms and flips too)."""
    count = {"images": 0}
    original = features_module.encode_images

    def counting(net, images):
        count["images"] += images.shape[0]
        return original(net, images)

    monkeypatch.setattr(features_module, "encode_images", counting)
    return count


def float_stack(frames: int = 7):
    """float32 ``(frames, 64, 80)`` (scaled by a value range, unlike uint8) with an odd length
    (the last frame is encoded alone)."""
    video, _ = moving_disk_video(frames)
    return video.astype(np.float32) * 3.0 + 1000.0


def run(model, stack, settings=None, point=(32, 22), **choices):
    """Click ``point`` on frame 0, propagate forward; the masks and the closed session."""
    session = PropagationSession(model, stack, settings=settings, **choices)
    session.add_points(0, 1, [point], [1])
    masks = [r.masks[1] for r in session.propagate("forward")]
    session.close()
    return masks, session


def same_masks(first, second) -> bool:
    return len(first) == len(second) and all(
        np.array_equal(a, b) for a, b in zip(first, second, strict=True)
    )


@pytest.mark.parametrize("memory", ["sam2", "selective"])
def test_a_second_session_runs_no_encoder_and_gives_identical_masks(
    small_net, encoded_images, memory
):
    stack = float_stack()
    first, session = run(small_net, stack, memory=memory)
    assert encoded_images["images"] == 7 and first[3].any()
    store = session.disk_cache.store
    assert store.counts.written == 4 + 1  # pairs (0,1) (2,3) (4,5) (6,), the positions
    encoded_images["images"] = 0
    second, again = run(small_net, stack, memory=memory)
    assert encoded_images["images"] == 0
    assert again.encoder.stored_loads == 4 and again.encoder.encoder_calls == 0
    assert same_masks(first, second)


def test_features_from_disk_equal_the_encoded_ones(small_net):
    stack = float_stack()
    fresh = PropagationSession(small_net, stack)
    encoded = [fresh.encoder.features(f) for f in range(7)]
    fresh.close()
    reopened = PropagationSession(small_net, stack)
    loaded = [reopened.encoder.features(f) for f in range(7)]
    assert reopened.encoder.encoder_calls == 0
    for a, b in zip(encoded, loaded, strict=True):
        for x, y in zip([*a.maps, *a.pos_maps], [*b.maps, *b.pos_maps], strict=True):
            # the same values, dtype and strides (some levels are channels-last)
            assert torch.equal(x, y) and x.dtype == y.dtype and x.stride() == y.stride()
    assert any(not m.is_contiguous() for m in loaded[0].maps)


def _misses_after(small_net, encoded_images, first_kwargs, second_kwargs, model=None):
    """Images encoded by a second session (``model``, ``second_kwargs``) after a first."""
    run(small_net, float_stack(), **first_kwargs)
    encoded_images["images"] = 0
    run(model or small_net, float_stack(), **second_kwargs)
    return encoded_images["images"]


def test_other_encoder_weights_miss(small_net, encoded_images):
    other = copy.deepcopy(small_net)
    with torch.no_grad():
        other.image_encoder.neck.convs[0].conv.weight[0, 0] += 0.5
    assert _misses_after(small_net, encoded_images, {}, {}, model=other) == 7


def test_weights_outside_the_image_encoder_still_hit(small_net, encoded_images):
    tuned = copy.deepcopy(small_net)  # as after decoder-only fine-tuning
    with torch.no_grad():
        tuned.sam_mask_decoder.iou_prediction_head.layers[0].weight.mul_(1.5)
        tuned.memory_encoder.out_proj.weight.add_(0.1)
    assert encoder_fingerprint(tuned) == encoder_fingerprint(small_net)
    assert _misses_after(small_net, encoded_images, {}, {}, model=tuned) == 0


def test_a_weight_changed_in_place_changes_the_fingerprint():
    net = present_object_net(small_config(), seed=3)
    before = encoder_fingerprint(net)
    weight = net.image_encoder.trunk.patch_embed.proj.weight
    original = weight[0, 0, 0, 0].item()
    with torch.no_grad():
        weight[0, 0, 0, 0] = original + 1.0
    changed = encoder_fingerprint(net)
    with torch.no_grad():
        weight[0, 0, 0, 0] = original
    assert changed != before and encoder_fingerprint(net) == before


def test_another_architecture_with_the_same_weights_misses():
    torch.manual_seed(0)
    one = build_model(small_config(num_heads=1))
    two = build_model(small_config(num_heads=2))  # the same weight shapes
    two.load_state_dict(one.state_dict())
    assert encoder_fingerprint(one) != encoder_fingerprint(two)


def test_another_precision_misses(small_net, encoded_images):
    prep = Preprocessing(256, None, None, 0.0)
    bf16 = LoadedModel("bf16", small_net, prep, torch.device("cpu"), torch.bfloat16, {}, False)
    fp32 = LoadedModel("fp32", small_net, prep, torch.device("cpu"), torch.float32, {}, False)
    run(fp32, float_stack())
    encoded_images["images"] = 0
    masks, session = run(bf16, float_stack())
    assert encoded_images["images"] == 7
    assert session.encoder.features(0).maps[0].dtype == torch.bfloat16
    encoded_images["images"] = 0
    again, _ = run(bf16, float_stack())  # bf16 entries now stored: read back in bf16
    assert encoded_images["images"] == 0 and same_masks(masks, again)


def test_another_region_misses(small_net, encoded_images):
    region = {"region": (0, 0, 64, 64)}
    assert _misses_after(small_net, encoded_images, {}, dict(region)) == 7
    encoded_images["images"] = 0
    run(small_net, float_stack(), **region)
    assert encoded_images["images"] == 0


def test_another_value_range_misses(small_net, encoded_images):
    # the same frames scaled with other percentiles are another model input
    settings = SessionSettings(percentiles=(5.0, 95.0))
    assert _misses_after(small_net, encoded_images, {}, {"settings": settings}) == 7


def test_a_changed_frame_misses_only_its_pair_with_a_temporal_adapter(encoded_images):
    torch.manual_seed(1)
    adapted = build_model(small_config(), temporal_adapter=True)
    with torch.no_grad():  # a live adapter: a frame's features depend on its neighbour
        for name, param in adapted.named_parameters():
            if "adapter.linear_up" in name:
                param.normal_(0, 0.2)
    stack, _ = moving_disk_video(7)  # uint8: no value range, so other frames stay the same
    run(adapted, stack)
    changed = stack.copy()
    changed[3, :10, :10] = 255
    encoded_images["images"] = 0
    _, session = run(adapted, changed)
    assert encoded_images["images"] == 2  # frames 2 and 3, encoded together again
    assert session.encoder.stored_loads == 3


def test_zoomed_objects_reopen_without_the_encoder(small_net, encoded_images):
    stack, _ = moving_disk_video(5, rows=256, cols=256)  # zoom tries 64, 128 and 256 px
    first, session = run(small_net, stack, zoom=True, point=(128, 22))
    assert encoded_images["images"] > 5  # the regions tried at the click, then the chosen one
    assert session.region_of(1) != (0, 0, 256, 256)
    encoded_images["images"] = 0
    second, _ = run(small_net, stack, zoom=True, point=(128, 22))
    assert encoded_images["images"] == 0 and same_masks(first, second)


def test_a_corrupt_entry_is_recomputed_with_a_warning_and_rewritten(
    small_net, encoded_images, caplog
):
    stack = float_stack()
    first, session = run(small_net, stack)
    key = session.disk_cache.group_key(session.frames, [2, 3])
    store = session.disk_cache.store
    path, (entry, _) = store.path(key), store.read(key)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    encoded_images["images"] = 0
    with caplog.at_level(logging.WARNING, logger="napari_samed2.engine.feature_store"):
        second, again = run(small_net, stack)
    assert encoded_images["images"] == 2 and same_masks(first, second)
    assert any(str(path) in r.getMessage() for r in caplog.records)
    assert again.disk_cache.store.counts.rejected == 1
    rewritten, _ = store.read(key)  # written again, whole
    assert all(torch.equal(rewritten[name], entry[name]) for name in entry)


def test_features_of_the_wrong_shape_are_recomputed(small_net, encoded_images, caplog):
    stack = float_stack()
    first, session = run(small_net, stack)
    disk = session.disk_cache
    key = disk.group_key(session.frames, [4, 5])
    entry, metadata = disk.store.read(key)
    entry["1.2"] = entry["1.2"][:, :, :8]  # a level cropped, header and key still right
    disk.store.write(key, entry, {k: v for k, v in metadata.items() if k != "key"})
    encoded_images["images"] = 0
    with caplog.at_level(logging.WARNING):
        second, _ = run(small_net, stack)
    assert encoded_images["images"] == 2 and same_masks(first, second)
    assert "holding 1.2 as torch.float32 (1, 64, 8, 16)" in caplog.text


@pytest.mark.parametrize(
    "layout",
    [
        '[["int64", [1, 2, 3, 4]]]',  # a level count and dtype the model does not have
        '[[["float32"], [1, 8, 64, 64], {}], [], 3]',  # values of the wrong types
        "not json",
    ],
)
def test_a_foreign_positions_entry_is_recomputed(small_net, encoded_images, caplog, layout):
    stack = float_stack()
    first, session = run(small_net, stack)
    disk = session.disk_cache
    key = disk.positions_key()
    entry, metadata = disk.store.read(key)
    disk.store.write(key, entry, {**metadata, "layout": layout})
    encoded_images["images"] = 0
    with caplog.at_level(logging.WARNING):
        second, _ = run(small_net, stack)
    assert "not a sound positions entry" in caplog.text
    # the first pair is encoded again, which gives the positions: the other pairs are read
    assert encoded_images["images"] == 2 and same_masks(first, second)
    encoded_images["images"] = 0
    third, _ = run(small_net, stack)  # the positions entry was written again
    assert encoded_images["images"] == 0 and same_masks(first, third)


def test_blank_frames_are_still_reported_when_features_come_from_disk(small_net):
    stack = float_stack()
    stack[4:6] = 7.0
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run(small_net, stack)
        blank = [w for w in caught if issubclass(w.category, ConstantFrameWarning)]
        assert len(blank) == 1 and "frames 4-5" in str(blank[0].message)


def test_the_disk_cache_can_be_turned_off(small_net, encoded_images, feature_cache_folder):
    off = SessionSettings(disk_cache_bytes=0)
    _, session = run(small_net, float_stack(), settings=off)
    assert session.disk_cache is None and list(feature_cache_folder.iterdir()) == []
    with pytest.raises(ValueError, match="disk_cache_bytes must be a number of bytes >= 0"):
        SessionSettings(disk_cache_bytes=-1)


def test_an_unusable_cache_folder_is_logged_and_segmenting_goes_on(small_net, tmp_path, caplog):
    (tmp_path / "taken").write_text("x")
    with caplog.at_level(logging.WARNING):
        masks, session = run(
            small_net, float_stack(), settings=SessionSettings(disk_cache_dir=tmp_path / "taken")
        )
    assert session.disk_cache is None and masks[3].any()
    assert "no disk cache of features this session" in caplog.text and "is a file" in caplog.text


def test_the_bound_holds_while_a_stack_is_encoded(small_net, tmp_path):
    stack = float_stack()
    _, session = run(small_net, stack, settings=SessionSettings(disk_cache_dir=tmp_path))
    disk = session.disk_cache
    size = {
        name: disk.store.path(key).stat().st_size
        for name, key in (
            ("positions", disk.positions_key()),
            ("pair", disk.group_key(session.frames, [0, 1])),
        )
    }
    bound = size["positions"] + int(2.2 * size["pair"])
    tight = SessionSettings(disk_cache_dir=tmp_path / "tight", disk_cache_bytes=bound)
    _, session = run(small_net, stack, settings=tight)
    store, disk = session.disk_cache.store, session.disk_cache
    kept = [g for g in ([0, 1], [2, 3], [4, 5], [6]) if disk.group_key(session.frames, g) in store]
    assert store.nbytes <= bound and store.counts.evicted == 2
    assert kept == [[4, 5], [6]] and disk.positions_key() in store  # the most recent, and
    # the positions every entry needs


def test_content_hash_tells_frames_and_value_ranges_apart():
    video = np.random.default_rng(0).integers(0, 65535, (2, 1024, 1024), dtype=np.uint16)
    from napari_samed2.engine import FrameSource

    frames = FrameSource(video)
    first = frames.content_hash(0)
    assert first == FrameSource(video.copy()).content_hash(0)
    assert first != frames.content_hash(1) and len(first) == 64
    other_range = FrameSource(video, value_range=(0, 1000))
    assert other_range.content_hash(0) != first
