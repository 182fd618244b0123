"""Objects that end once (`SessionOptions.ends_once`): beyond a slice where an object's mask is
empty, away from its prompts, it stays absent; the nano model's profile turns it on for depth
axes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_samed2 import synthetic
from napari_samed2.engine import PropagationSession, SessionOptions
from napari_samed2.engine.extent import ABSENT_LOGIT, EMPTY_RUN
from napari_samed2.model.profile import NANO_PROFILE, SAM2_PROFILE, ModelProfile

from .conftest import disk_that_ends

FRAMES, MASKS = disk_that_ends()
DISK = MASKS[0]
EMPTY = np.zeros(DISK.shape, bool)
END = 7  # the disk's last frame


def _session(model, **choices) -> PropagationSession:
    session = PropagationSession(model, FRAMES, **choices)
    session.add_points(0, 1, [[32, 40]], [1])
    return session


def test_an_absent_correction_ends_the_object_for_good(nano):
    """Marked absent on the frame after its end, the object is absent on every frame beyond,
    and the network does not run for it there (the score says so: the absent logit)."""
    session = _session(nano, ends_once=True)
    session.correct(END + 1, 1, EMPTY)
    results = {r.frame: r for r in session.propagate("forward")}
    for frame in range(END + 2, len(FRAMES)):
        assert not results[frame].masks[1].any()
        assert results[frame].object_score[1] == ABSENT_LOGIT
        assert results[frame].iou[1] == 0.0 and not results[frame].in_memory[1]
    for frame in range(1, END + 1):  # before the end: decoded as usual
        assert results[frame].object_score[1] > ABSENT_LOGIT
        assert results[frame].masks[1].any()


def test_a_prompt_further_on_keeps_the_frames_before_it_decoded(nano):
    """A gap before a prompt where the object is present is the model's miss, not the object's
    end: those frames are decoded."""
    session = _session(nano, ends_once=True)
    session.correct(END + 1, 1, EMPTY)
    session.add_points(12, 1, [[32, 40]], [1])
    results = {r.frame: r for r in session.propagate("forward")}
    for frame in (END + 2, END + 3, 11, 13, 14, 15):
        assert results[frame].object_score[1] > ABSENT_LOGIT, frame
    assert results[13].masks[1].any()


def test_without_it_the_frames_beyond_an_absent_correction_are_decoded(nano):
    session = _session(nano, ends_once=False)
    session.correct(END + 1, 1, EMPTY)
    results = {r.frame: r for r in session.propagate("forward")}
    assert all(results[f].object_score[1] > ABSENT_LOGIT for f in range(END + 2, len(FRAMES)))


def _first_end(present: list[bool]) -> int | None:
    """Index of the first frame after `EMPTY_RUN` empty ones in a row (None: none)."""
    for index in range(EMPTY_RUN, len(present)):
        if not any(present[index - EMPTY_RUN : index]):
            return index
    return None


def test_no_object_comes_back_after_it_ended_and_masks_before_are_unchanged(nano):
    """In a dense tissue volume no clicked nucleus has a mask beyond two empty slices in a row;
    up to there the masks are those of a session without the option (the shipped weights
    rarely end a nucleus by themselves: the corrections above test the ending itself)."""
    sample = synthetic.tissue_volume(shape=(16, 96, 96), seed=3)
    labels = sample.labels
    ids = [i for i in np.unique(labels) if i > 0]
    areas = {i: (labels == i).sum(axis=(1, 2)) for i in ids}
    chosen = sorted(ids, key=lambda i: -areas[i].max())[:6]
    on = PropagationSession(nano, sample.image, ends_once=True)
    off = PropagationSession(nano, sample.image, ends_once=False)
    compared = 0
    for obj_id in chosen:
        frame = int(np.argmax(areas[obj_id]))
        row, col = np.argwhere(labels[frame] == obj_id).mean(axis=0).astype(int)
        masks = {}
        for name, session in (("on", on), ("off", off)):
            session.reset(bank=True)
            session.add_points(frame, int(obj_id), [[row, col]], [1])
            masks[name] = {r.frame: r.masks[int(obj_id)] for r in session.propagate("forward")}
        frames = sorted(masks["on"])
        present = [bool(masks["on"][f].any()) for f in frames]
        end = _first_end(present)
        assert present[0] and (end is None or not any(present[end:])), (obj_id, present)
        for f in frames[:end]:
            np.testing.assert_array_equal(masks["on"][f], masks["off"][f])
        compared += len(frames[:end])
    assert compared >= 6 * 3  # each object was followed over several slices


def test_the_nano_profile_ends_objects_once_on_depth_axes_only():
    assert SessionOptions().resolved(NANO_PROFILE, "Z").ends_once is True
    assert SessionOptions().resolved(NANO_PROFILE, "T").ends_once is False
    assert SessionOptions().resolved(NANO_PROFILE, None).ends_once is False
    assert SessionOptions().resolved(SAM2_PROFILE, "Z").ends_once is False  # sam2's behaviour
    assert SessionOptions(ends_once=False).resolved(NANO_PROFILE, "Z").ends_once is False
    assert SessionOptions(ends_once=True).resolved(SAM2_PROFILE, "T").ends_once is True


def test_the_session_takes_the_default_for_its_axis_kind_and_changes_it_live(nano):
    assert PropagationSession(nano, FRAMES, axis_kind="Z").options.ends_once is True
    session = PropagationSession(nano, FRAMES, axis_kind="T")
    assert session.options.ends_once is False
    assert session.set_options(ends_once=True).ends_once is True
    with pytest.raises(ValueError, match=r"axis_kind must be one of \('T', 'Z'\) or None, got 'X'"):
        PropagationSession(nano, FRAMES, axis_kind="X")


def test_bad_values_are_refused_by_name():
    with pytest.raises(ValueError, match=r"ends_once must be True, False or None .*got 'yes'"):
        SessionOptions(ends_once="yes")
    with pytest.raises(ValueError, match=r"ends_once_axes must hold axis kinds .*\['X'\]"):
        ModelProfile("custom", ends_once_axes=("X",))


def test_blank_frames_do_not_end_an_object(nano):
    """Two constant frames inside the disk's run of frames (an acquisition glitch) say nothing
    about where it is: the frames after them are still decoded and hold the disk."""
    frames = FRAMES.copy()
    frames[3:5] = 60  # constant
    session = PropagationSession(nano, frames, ends_once=True)
    session.add_points(0, 1, [[32, 40]], [1])
    results = {r.frame: r for r in session.propagate("forward")}
    assert session.frames.constant_frames.keys() == {3, 4}
    for frame in (5, 6, 7):
        assert results[frame].object_score[1] > ABSENT_LOGIT
        assert results[frame].masks[1].sum() > 0.5 * DISK.sum()
