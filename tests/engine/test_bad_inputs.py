"""Bad input to a session: a clear error naming the value and what is accepted, and the
session keeps working (each case prompts again afterwards and checks the mask)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_samed2.engine import (
    EngineError,
    FrameDataError,
    PromptError,
    PropagationError,
    PropagationSession,
)
from napari_samed2.engine.errors import NoPromptError, SessionBusyError

from .conftest import disk_that_ends, iou

ROWS, COLS = 64, 80
FRAMES, MASKS = disk_that_ends()
DISK = MASKS[0]
EMPTY = np.zeros((ROWS, COLS), bool)


def _session(model, **kwargs) -> PropagationSession:
    session = PropagationSession(model, FRAMES, **kwargs)
    session.add_points(0, 1, [[32, 40]], [1])
    return session


def _state(session: PropagationSession):
    return (
        session.object_ids,
        session.confirmed_frames,
        {f: {o: m.copy() for o, m in r.masks.items()} for f, r in session.results.items()},
    )


def _assert_unchanged(before, after) -> None:
    assert before[:2] == after[:2]
    assert before[2].keys() == after[2].keys()
    for frame, masks in before[2].items():
        assert masks.keys() == after[2][frame].keys()
        for obj_id, mask in masks.items():
            np.testing.assert_array_equal(mask, after[2][frame][obj_id])


def _assert_still_segments(session: PropagationSession) -> None:
    """A refused call leaves a session that prompts and propagates as before."""
    result = session.add_points(1, 1, [[32, 40]], [1])
    assert iou(result.masks[1], DISK) > 0.6
    last = list(session.propagate("forward", start=1, stop=3))[-1]
    assert last.frame == 3 and iou(last.masks[1], DISK) > 0.6


BAD_OBJECT_IDS = [
    (0, "obj_id 0 is out of range: label ids go from 1 to 2147483647"),
    (-3, "obj_id -3 is out of range: label ids go from 1 to 2147483647"),
    (2**31, "obj_id 2147483648 is out of range: label ids go from 1 to 2147483647"),
    (np.uint64(3_000_000_000), "obj_id 3000000000 is out of range"),
    (True, "must be an integer label id from 1 to 2147483647, got True"),
    (np.bool_(True), "must be an integer label id from 1 to 2147483647, got "),
    (2.5, "must be an integer label id from 1 to 2147483647, got 2.5"),
    (float("nan"), "must be an integer label id from 1 to 2147483647, got nan"),
    ("3", "must be an integer label id from 1 to 2147483647, got '3'"),
]


@pytest.mark.parametrize(("obj_id", "message"), BAD_OBJECT_IDS)
@pytest.mark.parametrize("call", ["add_points", "add_box", "add_mask", "correct"])
def test_bad_object_ids_are_refused_by_every_prompt(nano, obj_id, message, call):
    session = _session(nano)
    before = _state(session)
    prompt = {
        "add_points": lambda: session.add_points(0, obj_id, [[32, 40]], [1]),
        "add_box": lambda: session.add_box(0, obj_id, (20, 28, 44, 52)),
        "add_mask": lambda: session.add_mask(0, obj_id, DISK),
        "correct": lambda: session.correct(0, obj_id, DISK),
    }[call]
    with pytest.raises(PromptError, match=_literal(message)):
        prompt()
    _assert_unchanged(before, _state(session))
    _assert_still_segments(session)


def test_ids_that_fit_int32_labels_and_integral_floats_are_accepted(nano):
    from napari_samed2.labelset import assemble_labels

    largest = 2**31 - 1
    session = PropagationSession(nano, FRAMES)
    result = session.add_points(0, largest, [[32, 40]], [1])
    labels = assemble_labels(session).labels  # the int32 stack the CLI writes
    np.testing.assert_array_equal(labels[0] == largest, result.masks[largest])
    assert iou(result.masks[largest], DISK) > 0.6

    session.add_points(0, np.int64(5), [[10, 10]], [1])
    result = session.add_points(0, 3.0, [[50, 70]], [1])
    assert session.object_ids == [3, 5, largest]
    assert all(type(obj_id) is int for obj_id in result.masks)


BAD_BOXES = [
    ((10, 10, 10, 30), "has zero area; a box needs row1 > row0 and col1 > col0"),
    ((10, 10, 30, 10), "has zero area"),
    ((100, 100, 120, 130), "lies outside the frame of shape (64, 80); accepted: boxes that"),
    ((64, 10, 70, 20), "lies outside the frame of shape (64, 80)"),  # below the last row
    ((-20, -20, 0, 10), "lies outside the frame of shape (64, 80)"),  # above the first row
    ((10, -30, 20, -1), "lies outside the frame of shape (64, 80); accepted: boxes that"),
    ((30, 30, 10, 50), "row1 > row0 and col1 > col0 (corners as (top, left, bottom, right))"),
    ((1, 2, 3), "box must be 4 finite numbers (row0, col0, row1, col1)"),
    ((1, 2, np.nan, 4), "box must be 4 finite numbers"),
    ((1, 2, np.inf, 4), "box must be 4 finite numbers"),
    (("a", 2, 3, 4), "box must be 4 finite numbers"),
]


@pytest.mark.parametrize(("box", "message"), BAD_BOXES)
def test_boxes_outside_the_frame_or_without_area_are_refused(nano, box, message):
    session = _session(nano)
    before = _state(session)
    with pytest.raises(PromptError, match=_literal(message)):
        session.add_box(0, 2, box)
    _assert_unchanged(before, _state(session))
    _assert_still_segments(session)


def test_a_box_partly_outside_is_clipped_to_the_frame(nano):
    overshooting = PropagationSession(nano, FRAMES).add_box(0, 2, (-5, 29, 43, 95))
    inside = PropagationSession(nano, FRAMES).add_box(0, 2, (0, 29, 43, 80))
    np.testing.assert_array_equal(overshooting.masks[2], inside.masks[2])
    assert iou(overshooting.masks[2], DISK) > 0.8


BAD_POINTS = [
    ([], [], "no points were given (an empty array); give at least one (row, col) click"),
    (np.zeros((0, 2)), np.zeros(0), "no points were given"),
    ([[100, 1]], [1], "points [[100.0, 1.0]] lie outside the frame of shape (64, 80); "),
    ([[10, -1]], [1], "accepted: 0 <= row <= 64 and 0 <= col <= 80"),
    ([[np.nan, 3]], [1], "points must be finite numbers, got [[nan, 3.0]] (NaN or infinite)"),
    ([[4, np.inf]], [1], "points must be finite numbers, got [[4.0, inf]]"),
    ([["a", 3]], [1], "points must be numbers (row, col)"),
    ([[1, 1, 1]], [1], "points must have shape (N, 2) as (row, col), got (1, 3)"),
]


@pytest.mark.parametrize(("points", "labels", "message"), BAD_POINTS)
def test_bad_points_are_refused(nano, points, labels, message):
    session = _session(nano)
    before = _state(session)
    with pytest.raises(PromptError, match=_literal(message)):
        session.add_points(0, 1, points, labels)
    _assert_unchanged(before, _state(session))
    _assert_still_segments(session)


def test_an_empty_mask_cannot_prompt_an_object(nano):
    session = _session(nano)
    before = _state(session)
    with pytest.raises(PromptError, match="is empty: an empty mask cannot prompt an object; to "):
        session.add_mask(2, 2, EMPTY)
    with pytest.raises(PromptError, match=r"absent on this frame use correct\(\)"):
        session.add_mask(2, 1, np.zeros((ROWS, COLS), np.uint8))
    _assert_unchanged(before, _state(session))
    _assert_still_segments(session)


def test_a_mask_outside_a_zoomed_objects_region_is_refused(nano):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    nucleus = (yy - 30) ** 2 + (xx - 30) ** 2 < 6**2
    images = rng.normal(60, 15, (2, 256, 256))
    images[:, nucleus] += 120
    session = PropagationSession(nano, np.clip(images, 0, 255).astype(np.uint8), zoom=True)
    session.add_points(0, 1, [[30, 30]], [1])
    region = session.region_of(1)
    assert region == (0, 0, 64, 64)  # a small object gets a small region
    far = np.zeros((256, 256), bool)
    far[220:240, 220:240] = True
    with pytest.raises(
        PromptError, match=_literal(f"no pixel the model can see in the region {region}")
    ):
        session.add_mask(1, 1, far)
    assert session.object_ids == [1] and session.region_of(1) == region
    assert iou(session.add_mask(1, 1, nucleus).masks[1], nucleus) > 0.8


def test_a_correction_needs_a_known_object(nano):
    session = _session(nano)
    session.add_points(0, 4, [[10, 10]], [1])
    before = _state(session)
    with pytest.raises(PromptError, match=_literal("object 7 is not in this session")) as error:
        session.correct(3, 7, DISK)
    assert "objects: [1, 4]" in str(error.value)
    assert "add_points, add_box or add_mask" in str(error.value)
    _assert_unchanged(before, _state(session))
    assert 7 not in session.object_ids and len(session.bank) == 0
    _assert_still_segments(session)


@pytest.mark.parametrize("memory", ["selective", "sam2"])
def test_an_empty_correction_teaches_the_model_that_the_object_is_absent(nano, memory):
    """The disk ends after frame 7; a look-alike appears at the same place from frame 10.
    Uncorrected, the nano model keeps the object on every frame after its end; one empty
    correction on frame 8 makes it absent on all of them."""
    end = 7

    def after_the_end(correct: bool) -> tuple[list[int], PropagationSession]:
        session = _session(nano, memory=memory)
        list(session.propagate("forward"))
        if correct:
            corrected = session.correct(end + 1, 1, EMPTY)
            assert not corrected.masks[1].any()
            list(session.propagate("forward", start=end + 1))
        areas = [int(session.results[f].masks[1].sum()) for f in range(end + 1, len(FRAMES))]
        return areas, session

    uncorrected, _ = after_the_end(correct=False)
    corrected, session = after_the_end(correct=True)
    assert sum(uncorrected) > 0.5 * DISK.sum() * len(uncorrected)  # false positives throughout
    assert sum(corrected) <= 0.02 * sum(uncorrected)
    for frame in range(end + 1):  # the frames where it is present keep their masks
        assert iou(session.results[frame].masks[1], MASKS[frame]) > 0.6

    # stored as a confident (1.0) memory of an empty mask
    result = session.results[end + 1]
    assert result.iou[1] == 1.0 and result.prompted[1] and result.object_score[1] < 0
    assert end + 1 in session.confirmed_frames[1]
    if memory == "selective":
        (entry,) = [e for e in session.bank.entries if e.origin == "correction"]
        assert (entry.frame, entry.obj_id, entry.confidence) == (end + 1, 1, 1.0)
        assert bool(entry.features.float().isfinite().all())

    # a later correction with the object present brings it back from there on
    session.correct(12, 1, DISK)
    results = list(session.propagate("forward", start=12))
    assert all(iou(r.masks[1], DISK) > 0.6 for r in results)


def test_error_classes_derive_from_the_builtins_that_describe_them(small_net):
    assert issubclass(PromptError, ValueError) and issubclass(FrameDataError, ValueError)
    assert issubclass(PropagationError, ValueError)
    assert issubclass(SessionBusyError, RuntimeError) and issubclass(SessionBusyError, EngineError)
    assert issubclass(NoPromptError, RuntimeError) and issubclass(NoPromptError, PropagationError)
    session = PropagationSession(small_net, FRAMES)
    with pytest.raises(RuntimeError, match="no object has a prompt yet"):
        session.propagate()  # a state, not a bad value: callers catching RuntimeError see it


def _literal(text: str) -> str:
    import re

    return re.escape(text)
