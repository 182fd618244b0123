"""Session snapshots (history.py): restoring one makes the session forget what came after."""

from __future__ import annotations

import numpy as np
import pytest

from napari_samed2.engine import MemorySettings, PropagationSession, SessionSettings


def _session(net, frames, **kwargs):
    # gate and bank thresholds at 0: every propagated frame enters the memory and the bank,
    # so a memory left behind by an undone run would change the next run's masks
    settings = SessionSettings(memory=MemorySettings(bank_threshold=0.0))
    return PropagationSession(
        net, frames, memory="selective", gate=0.0, settings=settings, **kwargs
    )


def _masks(results) -> dict[int, np.ndarray]:
    return {r.frame: r.masks[1].copy() for r in results}


def test_restore_forgets_a_run_and_the_next_run_equals_a_fresh_sessions(small_net, video):
    frames, _ = video
    session = _session(small_net, frames)
    session.add_points(2, 1, [[32, 28]], [1])
    before_run = session.snapshot()
    list(session.propagate("both"))
    assert len(session.bank) > 0 and len(session.track(1).non_cond) > 0

    session.restore(before_run)
    assert len(session.bank) == 0
    assert set(session.results) == {2} and session.last_frame is None
    assert session.track(1).non_cond == {} and session.track(1).tracked == {}
    # a second run in a different direction: the undone run's memories must not steer it
    again = _masks(session.propagate("forward", start=2))

    fresh = _session(small_net, frames)
    fresh.add_points(2, 1, [[32, 28]], [1])
    expected = _masks(fresh.propagate("forward", start=2))
    assert again.keys() == expected.keys()
    assert all(np.array_equal(again[f], expected[f]) for f in expected)


def test_restore_takes_a_correction_out_of_memory_and_bank_and_back(small_net, video):
    frames, disks = video
    session = _session(small_net, frames)
    session.add_points(0, 1, [[32, 20]], [1])
    list(session.propagate("forward"))
    bank_before = [e.uid for e in session.bank.entries]
    revision_before = session.bank.revision
    before_fix = session.snapshot()

    session.correct(4, 1, disks[4])
    with_fix = _masks(session.propagate("forward", start=4))
    after_fix = session.snapshot()
    assert session.confirmed_frames == {1: [0, 4]}
    assert any(e.origin == "correction" for e in session.bank.entries)

    session.restore(before_fix)  # undo
    assert session.confirmed_frames == {1: [0]}
    assert [e.uid for e in session.bank.entries] == bank_before
    assert session.bank.revision > revision_before, "changed content gets a new revision"
    without_fix = _masks(session.propagate("forward", start=4))

    other = _session(small_net, frames)
    other.add_points(0, 1, [[32, 20]], [1])
    list(other.propagate("forward"))
    expected = _masks(other.propagate("forward", start=4))
    assert all(np.array_equal(without_fix[f], expected[f]) for f in expected)
    assert any(not np.array_equal(without_fix[f], with_fix[f]) for f in with_fix)

    session.restore(after_fix)  # redo
    assert session.confirmed_frames == {1: [0, 4]}
    assert any(e.origin == "correction" and e.frame == 4 for e in session.bank.entries)
    again = _masks(session.propagate("forward", start=4))
    assert all(np.array_equal(again[f], with_fix[f]) for f in with_fix)


def test_a_snapshot_survives_being_restored_and_the_session_changing_again(small_net, video):
    frames, _ = video
    session = _session(small_net, frames)
    session.add_points(3, 1, [[32, 32]], [1])
    snapshot = session.snapshot()
    prompted = session.results[3].masks[1].copy()
    for _ in range(2):
        list(session.propagate("forward"))
        session.add_points(5, 1, [[30, 40]], [1])
        session.restore(snapshot)
        assert session.object_ids == [1] and session.confirmed_frames == {1: [3]}
        assert set(session.results) == {3}
        assert np.array_equal(session.results[3].masks[1], prompted)
        assert all(out["maskmem_features"] is None for out in session.track(1).cond.values())


def test_restore_covers_the_flip_averaging_sessions_of_a_2d_image(small_net, video):
    frames, _ = video
    image = frames[0]
    session = PropagationSession(small_net, image, flips=True)
    empty = session.snapshot()
    session.add_points(0, 1, [[32, 20]], [1])
    first = session.snapshot()
    first_mask = session.results[0].masks[1].copy()
    session.add_points(0, 2, [[10, 60]], [1])
    session.add_points(0, 1, [[40, 30]], [1], keep_previous=True)

    session.restore(first)
    assert session.object_ids == [1]
    assert all(other.object_ids == [1] for other in session.flip_sessions.values())
    np.testing.assert_array_equal(session.results[0].masks[1], first_mask)

    session.restore(empty)  # before the flipped sessions existed: they forget everything
    assert session.object_ids == [] and session.results == {}
    assert all(other.object_ids == [] for other in session.flip_sessions.values())
    again = session.add_points(0, 1, [[32, 20]], [1])
    np.testing.assert_array_equal(again.masks[1], first_mask)


def test_a_snapshot_restores_only_into_its_own_session(small_net, video):
    frames, _ = video
    session, other = _session(small_net, frames), _session(small_net, frames)
    session.add_points(1, 1, [[32, 28]], [1])
    snapshot = session.snapshot()
    with pytest.raises(ValueError, match="another PropagationSession"):
        other.restore(snapshot)
    assert other.object_ids == [] and session.object_ids == [1]
