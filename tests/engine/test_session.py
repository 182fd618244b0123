"""PropagationSession: directions, stop/resume, corrections, the selective memory, objects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_samed2.engine import (
    FrameResult,
    MemorySettings,
    PropagationSession,
    SessionSettings,
    load_bank,
    save_bank,
)
from napari_samed2.engine.carry import CarryPolicy
from napari_samed2.model import build_model, small_config

from .conftest import iou


def _session(net, frames, memory="sam2", non_overlap=True, gate_threshold=0.5, **memory_settings):
    settings = SessionSettings(memory=MemorySettings(**memory_settings))
    return PropagationSession(
        net, frames, memory=memory, settings=settings, non_overlap=non_overlap, gate=gate_threshold
    )


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("forward", [3, 4, 5, 6, 7]),
        ("backward", [3, 2, 1, 0]),
        ("both", [3, 4, 5, 6, 7, 2, 1, 0]),
    ],
)
def test_propagate_visits_frames_in_order_with_full_results(small_net, video, direction, expected):
    frames, _ = video
    session = _session(small_net, frames)
    prompt = session.add_points(3, 1, [[32, 32]], [1])
    assert prompt.frame == 3 and prompt.masks[1].shape == frames.shape[1:]
    assert session.frames_total(direction) == len(expected)
    results = list(session.propagate(direction))
    assert [r.frame for r in results] == expected
    for result in results:
        assert isinstance(result, FrameResult)
        assert result.masks[1].dtype == bool and result.masks[1].shape == frames.shape[1:]
        assert 0.0 <= result.iou[1] <= 1.0
        assert isinstance(result.object_score[1], float)
        assert result.in_memory[1] is True  # sam2 mode remembers every frame
        assert 0.0 <= result.confidence[1] <= 1.0
    assert sorted(session.results) == sorted(expected)


def test_stop_is_inclusive_and_limits_the_range(small_net, video):
    frames, _ = video
    session = _session(small_net, frames)
    session.add_points(2, 1, [[32, 28]], [1])
    assert [r.frame for r in session.propagate("forward", stop=4)] == [2, 3, 4]
    assert [r.frame for r in session.propagate("backward", start=4, stop=1)] == [4, 3, 2, 1]


def test_stopped_propagation_resumes_to_the_same_masks(small_net, video):
    frames, _ = video
    reference = _session(small_net, frames)
    reference.add_points(0, 1, [[32, 20]], [1])
    expected = {r.frame: r.masks[1] for r in reference.propagate("forward")}

    session = _session(small_net, frames)
    session.add_points(0, 1, [[32, 20]], [1])
    generator = session.propagate("forward")
    first = [next(generator).frame for _ in range(3)]
    generator.close()  # the user pressed stop
    assert first == [0, 1, 2] and session.last_frame == 2
    resumed = list(session.propagate("forward", start=session.last_frame + 1))
    assert [r.frame for r in resumed] == list(range(3, len(frames)))
    for result in resumed:
        assert np.array_equal(result.masks[1], expected[result.frame])

    cancelled = _session(small_net, frames)
    cancelled.add_points(0, 1, [[32, 20]], [1])
    calls = iter(range(100))
    done = list(cancelled.propagate("forward", cancel=lambda: next(calls) >= 2))
    assert [r.frame for r in done] == [0, 1]


def test_re_propagation_uses_cached_features(small_net, video):
    frames, _ = video
    session = _session(small_net, frames, memory="selective")
    session.add_points(0, 1, [[32, 20]], [1])
    list(session.propagate("forward"))
    calls = session.encoder.encoder_calls
    assert calls == (len(frames) + 1) // 2  # pairs (2k, 2k+1)
    list(session.propagate("forward"))
    assert session.encoder.encoder_calls == calls


@pytest.mark.parametrize("memory", ["sam2", "selective"])
def test_prefetch_encodes_ahead_in_a_thread_and_changes_no_mask(small_net, video, memory):
    """prefetch=True (off by default: slower on an idle 2-core CPU) must give the same masks
    with the same number of encoder batches: each pair is encoded once, ahead or not."""
    frames, _ = video
    results, calls = {}, {}
    for prefetch in (False, True):
        session = PropagationSession(
            small_net, frames, memory=memory,
            settings=SessionSettings(prefetch=prefetch, disk_cache_bytes=0),  # encode both times
        )  # fmt: skip
        assert session.encoder.prefetch_enabled is prefetch
        session.add_points(0, 1, [[32, 20]], [1])
        results[prefetch] = {r.frame: r.masks[1] for r in session.propagate("forward")}
        calls[prefetch] = session.encoder.encoder_calls
        session.close()
    assert SessionSettings().prefetch is False
    assert calls[True] == calls[False] == (len(frames) + 1) // 2
    assert results[True].keys() == results[False].keys() == set(range(len(frames)))
    for frame, mask in results[False].items():
        assert np.array_equal(results[True][frame], mask), frame


def test_correction_changes_following_frames_and_lands_in_the_bank(small_net, video):
    frames, disks = video
    session = _session(small_net, frames, memory="selective", gate_threshold=0.0)
    session.add_points(0, 1, [[32, 20]], [1])
    before = {r.frame: r.masks[1] for r in session.propagate("forward")}
    assert len(session.bank) == 0  # bank_threshold 0.8: random-net frames are not confident

    corrected = session.correct(4, 1, disks[4])
    assert corrected.iou[1] == 1.0 and corrected.prompted[1]
    assert iou(corrected.masks[1], disks[4]) > 0.9
    assert session.confirmed_frames == {1: [0, 4]}
    assert len(session.bank) == 1
    entry = session.bank.entries[0]
    assert (entry.origin, entry.frame, entry.obj_id, entry.confidence) == ("correction", 4, 1, 1.0)

    after = {r.frame: r.masks[1] for r in session.propagate("forward", start=4)}
    assert np.array_equal(after[4], session.results[4].masks[1])
    assert any(not np.array_equal(before[f], after[f]) for f in range(5, len(frames)))

    session.correct(4, 1, disks[4] & False)  # a second fix of the same frame replaces the entry
    assert len(session.bank) == 1 and not session.results[4].masks[1].any()


def test_confidence_gate_decides_what_enters_memory(small_net, video):
    frames, _ = video
    closed = _session(small_net, frames, memory="selective", gate_threshold=1.0)
    closed.add_points(0, 1, [[32, 20]], [1])
    flags = {r.frame: r.in_memory[1] for r in closed.propagate("forward")}
    assert flags[0] is True  # the prompted frame is a conditioning frame
    assert not any(flags[f] for f in range(1, len(frames)))

    opened = _session(small_net, frames, memory="selective", gate_threshold=0.0)
    opened.add_points(0, 1, [[32, 20]], [1])
    assert all(r.in_memory[1] for r in opened.propagate("forward"))


def test_confident_frames_are_offered_to_a_bounded_bank(small_net, video):
    frames, _ = video
    session = _session(
        small_net,
        frames,
        memory="selective",
        gate_threshold=0.0,
        bank_threshold=0.0,
        bank_capacity=3,
        top_k=2,
    )
    session.add_points(0, 1, [[32, 20]], [1])
    results = list(session.propagate("forward"))
    assert len(session.bank) == 3  # capacity respected
    assert all(e.origin == "propagation" and e.obj_id == 1 for e in session.bank.entries)
    assert len(results) == len(frames)


def test_objects_are_independent_and_removable(small_net, video):
    frames, _ = video
    session = _session(small_net, frames, non_overlap=False)
    session.add_points(2, 1, [[32, 28]], [1])
    session.add_box(2, 2, (20, 20, 44, 44))
    assert session.object_ids == [1, 2]
    results = list(session.propagate("forward"))
    assert all(set(r.masks) == {1, 2} for r in results)

    alone = _session(small_net, frames, non_overlap=False)
    alone.add_points(2, 1, [[32, 28]], [1])
    for result, single in zip(results, alone.propagate("forward"), strict=True):
        assert np.array_equal(result.masks[1], single.masks[1])

    session.remove_object(2)
    assert session.object_ids == [1]
    assert all(set(r.masks) == {1} for r in session.results.values())
    session.reset()
    assert session.object_ids == [] and session.results == {}


def test_overlapping_objects_get_disjoint_masks_and_removal_gives_pixels_back(small_net, video):
    frames, _ = video
    raw = _session(small_net, frames, non_overlap=False)
    resolved = _session(small_net, frames)
    for session in (raw, resolved):
        session.add_points(2, 1, [[32, 28]], [1])
        session.add_box(2, 2, (20, 20, 44, 44))
    raw_results = {r.frame: r for r in raw.propagate("forward")}
    resolved_results = {r.frame: r for r in resolved.propagate("forward")}
    contested_somewhere = False
    for frame, before in raw_results.items():
        after = resolved_results[frame]
        one, two = after.masks[1], after.masks[2]
        assert not (one & two).any()
        # nothing is lost or invented: contested pixels go to exactly one of the claimants
        assert np.array_equal(one | two, before.masks[1] | before.masks[2])
        assert not (one & ~before.masks[1]).any() and not (two & ~before.masks[2]).any()
        contested_somewhere |= bool((before.masks[1] & before.masks[2]).any())
    assert contested_somewhere, "the box and the click must overlap for this test to mean much"
    resolved.remove_object(2)
    for frame, before in raw_results.items():
        assert np.array_equal(resolved.results[frame].masks[1], before.masks[1])


def test_two_dimensional_image_is_a_one_frame_stack(small_net, video):
    frames, _ = video
    rgb = np.stack([frames[0]] * 3, axis=-1)
    session = PropagationSession(small_net, rgb)
    assert session.num_frames == 1 and session.frame_shape == frames.shape[1:]
    result = session.add_points(0, 1, [[32, 20]], [1])
    assert result.frame == 0 and result.masks[1].shape == frames.shape[1:]
    assert [r.frame for r in session.propagate()] == [0]


def test_features_do_not_depend_on_direction_with_pair_encoding(video):
    """Frames are encoded in fixed pairs, so a frame's features are the same whether reached
    forward or backward (the temporal adapter sees the same neighbour)."""
    frames, _ = video
    adapter_net = build_model(small_config(), temporal_adapter=True)
    session = _session(adapter_net, frames)
    session.add_points(3, 1, [[32, 32]], [1])
    forward = session.encoder.features(4).maps[-1].clone()
    other = _session(adapter_net, frames)
    other.add_points(5, 1, [[32, 40]], [1])
    list(other.propagate("backward", stop=4))
    assert np.array_equal(other.encoder.features(4).maps[-1].numpy(), forward.numpy())
    alone = adapter_net.forward_image(
        torch.stack([session.frames.model_input(f, session.model_input) for f in (4, 5)])
    )["backbone_fpn"][-1][:1]
    np.testing.assert_allclose(alone.detach().numpy(), forward.numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["float32", "uint16", "dask", "zarr"])
def test_other_dtypes_and_lazy_arrays(small_net, video, kind):
    frames, _ = video
    data = frames.astype(np.float32) * 3.5 - 100 if kind == "float32" else frames
    if kind == "uint16":
        data = frames.astype(np.uint16) * 200
    if kind == "dask":
        import dask.array as da

        data = da.from_array(frames.astype(np.float32), chunks=(1, *frames.shape[1:]))
    if kind == "zarr":
        import zarr

        data = zarr.array(frames.astype(np.float32), chunks=(1, *frames.shape[1:]))
    session = _session(small_net, data)
    session.add_points(1, 1, [[32, 24]], [1])
    results = list(session.propagate("forward", stop=3))
    assert [r.frame for r in results] == [1, 2, 3]
    # every non-uint8 variant is a linear rescale of the same video: same scaled frames
    reference = _session(small_net, frames.astype(np.float32))
    reference.add_points(1, 1, [[32, 24]], [1])
    for result, expected in zip(results, reference.propagate("forward", stop=3), strict=True):
        assert iou(result.masks[1], expected.masks[1]) > 0.99


def test_four_dimensional_stack_with_chosen_axis(small_net, video):
    frames, _ = video
    stack = np.stack([frames, frames[::-1]])  # (T=2, Z=8, Y, X)
    session = PropagationSession(small_net, stack, axis=1, position=(1, 0, 0, 0))
    assert session.num_frames == len(frames)
    np.testing.assert_array_equal(session.frames.read(0), frames[-1])
    session.add_points(0, 1, [[32, 40]], [1])
    assert len(list(session.propagate("forward", stop=2))) == 3


def test_a_saved_bank_is_used_by_a_new_session(small_net, video, tmp_path):
    from napari_samed2.engine import BankError

    frames, disks = video
    first = _session(small_net, frames, memory="selective", gate_threshold=0.0)
    first.add_points(0, 1, [[32, 20]], [1])
    first.correct(6, 1, disks[6])
    path = tmp_path / "cells.safetensors"
    save_bank(first.bank, path)

    def run(bank):
        session = PropagationSession(
            small_net,
            frames,
            memory="selective",
            gate=0.0,
            settings=SessionSettings(memory=MemorySettings(top_k=1)),
            bank=bank,
        )
        session.add_points(0, 1, [[32, 20]], [1])
        return [r.masks[1] for r in session.propagate("forward")]

    without, with_bank = run(None), run(load_bank(path))
    assert any(not np.array_equal(a, b) for a, b in zip(without, with_bank, strict=True))

    other_net = build_model(small_config(mem_dim=16))
    session = PropagationSession(other_net, frames, memory="selective", bank=load_bank(path))
    session.add_points(0, 1, [[32, 20]], [1])
    with pytest.raises(BankError, match="same model"):
        list(session.propagate("forward"))


def test_loaded_model_preprocessing_is_used(tmp_path, video):
    """A LoadedModel brings its own preprocessing: no mean/std, mask threshold 0.5 (SAMed-2)."""
    from napari_samed2.model import Preprocessing, load_model, save_checkpoint

    frames, _ = video
    config = small_config()
    net = build_model(config, temporal_adapter=True)
    path = save_checkpoint(
        tmp_path / "tiny-samed2.safetensors",
        net,
        config=config,
        temporal_adapter=True,
        preprocessing=Preprocessing(image_size=256, mean=None, std=None, mask_threshold=0.5),
        name="tiny-samed2",
    )
    model = load_model(path, device="cpu")
    session = PropagationSession(model, frames)
    assert session.mask_threshold == 0.5 and session.model_input.mean is None
    image = session.frames.model_input(0, session.model_input)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    session.add_points(0, 1, [[32, 20]], [1])
    results = list(session.propagate("forward"))
    assert len(results) == len(frames) and session.encoder.pairs


@pytest.mark.parametrize("memory", ["sam2", "selective"])
def test_clicks_on_a_tracked_frame_after_an_unpropagated_correction(small_net, video, memory):
    frames, disks = video
    session = _session(small_net, frames, memory=memory)
    session.add_points(2, 1, [[32, 28]], [1])
    list(session.propagate("forward"))
    session.correct(2, 1, disks[2])  # its memory is not encoded until needed
    result = session.add_points(5, 1, [[32, 40]], [1])  # decoded with memory
    assert result.masks[1].shape == frames.shape[1:]
    assert [r.frame for r in session.propagate("forward", start=2)] == list(range(2, 8))


def test_open_gate_with_sam2s_memory_count_equals_sam2_mode(small_net, video):
    """Selective mode with every frame remembered, the same number of recent memories
    (num_maskmem - 1 = 2 for this net) and an empty bank attends to the same memories as sam2:
    same masks. Closing the gate changes them (the memory is really gated)."""
    frames, _ = video

    def masks(memory, gate):
        session = _session(small_net, frames, memory=memory, gate_threshold=gate)
        session.add_points(0, 1, [[32, 20]], [1])
        return [r.masks[1] for r in session.propagate("forward")]

    sam2, opened, closed = masks("sam2", 0.5), masks("selective", 0.0), masks("selective", 1.0)
    assert all(np.array_equal(a, b) for a, b in zip(sam2, opened, strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(sam2, closed, strict=True))


def _with_hints(net, **hints):
    """``net`` as a LoadedModel whose preprocessing sets the given model hints."""
    from napari_samed2.model import LoadedModel, Preprocessing

    return LoadedModel(
        name="hints-test", net=net, preprocessing=Preprocessing(256, None, None, 0.0, **hints),
        device=torch.device("cpu"), dtype=torch.float32, config={}, temporal_adapter=False,
    )  # fmt: skip


def test_click_seed_models_get_their_clicks_in_the_mask_prompt(small_net):
    """A model whose preprocessing sets click_seed decodes clicks with the seed; others not."""
    from .conftest import moving_disk_video

    frames, _ = moving_disk_video(frames=2)
    masks = {}
    for click_seed in (False, True):
        session = PropagationSession(_with_hints(small_net, click_seed=click_seed), frames)
        masks[click_seed] = session.add_points(0, 1, [(32, 20)], [1]).masks[1]
    assert not np.array_equal(masks[False], masks[True])


def test_carry_mask_models_get_the_neighbours_mask_on_tracked_frames_only(small_net):
    from .conftest import moving_disk_video

    frames, _ = moving_disk_video(frames=6)
    runs = {}
    for carry_mask in (False, True):
        model = _with_hints(small_net, carry_mask=carry_mask)
        session = PropagationSession(model, frames, memory="sam2")
        session.add_points(2, 1, [(32, 28)], [1])
        runs[carry_mask] = {r.frame: r.masks[1] for r in session.propagate("both")}
        assert set(session.track(1).logits) == set(range(6))
    assert np.array_equal(runs[False][2], runs[True][2])  # the prompted frame is not tracked
    assert any(not np.array_equal(runs[False][f], runs[True][f]) for f in (0, 1, 3, 4, 5))


def test_selective_memory_carries_the_nearest_confident_mask_past_a_doubtful_one(small_net):
    from .conftest import moving_disk_video

    frames, _ = moving_disk_video(frames=6)
    model = _with_hints(small_net, carry_mask=True)

    def tracked(memory, lookback=4):
        settings = SessionSettings(memory=MemorySettings(carry_lookback=lookback))
        session = PropagationSession(model, frames, memory=memory, settings=settings)
        session.add_points(0, 1, [(32, 20)], [1])
        list(session.propagate("forward"))
        for frame in (1, 2, 3):  # confident unless a test says otherwise
            session.results[frame].iou[1], session.results[frame].object_score[1] = 0.9, 5.0
        return session, session.track(1)

    def carried_to_4(session, track):
        policy = CarryPolicy(
            memory=session.options.memory,
            settings=session.settings,
            frames=session.frames,
            threshold=session.mask_threshold,
            carry_mask=session.profile.carry_mask,
        )
        options = session.options
        return policy.carried_logits(
            track, 1, 4, False, session.results, region=session.region_of(1),
            motion=options.motion, gate=options.gate,
        )  # fmt: skip

    def clamped(logits):
        return logits.clamp(-32, 32)

    session, track = tracked("selective")
    assert all(not torch.equal(track.logits[3], track.logits[f]) for f in (0, 1, 2))
    assert torch.equal(carried_to_4(session, track), clamped(track.logits[3]))
    session.results[3].iou[1] = 0.1  # a doubtful neighbour is passed over
    assert torch.equal(carried_to_4(session, track), clamped(track.logits[2]))
    session.results[2].object_score[1] = -1.0  # so is one where the object seems absent
    assert torch.equal(carried_to_4(session, track), clamped(track.logits[1]))
    session.results[1].iou[1] = 0.0  # the prompted frame is always trusted
    assert torch.equal(carried_to_4(session, track), clamped(track.logits[0]))

    for memory, lookback in (("sam2", 4), ("selective", 0)):  # plain: always the neighbour
        session, track = tracked(memory, lookback)
        session.results[3].iou[1] = 0.1
        assert torch.equal(carried_to_4(session, track), clamped(track.logits[3]))

    with pytest.raises(ValueError, match="carry_lookback must be >= 0, got -1"):
        MemorySettings(carry_lookback=-1)
