"""Reading user corrections from napari Labels paint events."""

from __future__ import annotations

import numpy as np
from napari.layers import Labels

from napari_samed2.labelset import PendingCorrections, painted_frames
from napari_samed2.ui.frames import FrameGeometry


def collect(layer: Labels) -> list:
    events: list = []
    layer.events.paint.connect(lambda event: events.append(event.value))
    return events


def test_brush_paint_and_data_setitem_report_frames_and_labels():
    data = np.zeros((5, 32, 32), dtype=np.int32)
    data[3, 0:4, 0:4] = 2
    layer = Labels(data)
    events = collect(layer)
    geometry = FrameGeometry(ndim=3, frame_axis=0)
    layer.brush_size = 5
    layer.paint((1, 10, 10), 6)  # brush stroke on frame 1 (a masked-paint atom)
    layer.data_setitem((np.array([3, 3]), np.array([0, 1]), np.array([0, 1])), 0)  # erase on 3
    assert painted_frames(events[0], geometry) == {1: {6}}
    assert painted_frames(events[1], geometry) == {3: {2}}


def test_edits_outside_the_fixed_slice_are_ignored():
    layer = Labels(np.zeros((2, 4, 16, 16), dtype=np.int32))
    events = collect(layer)
    layer.data_setitem((np.array([0, 1]), np.array([2, 3]), np.array([5, 5]), np.array([5, 6])), 8)
    geometry = FrameGeometry(ndim=4, frame_axis=1, fixed={0: 1})
    assert painted_frames(events[0], geometry) == {3: {8}}


def test_pending_corrections_keep_only_known_objects():
    pending = PendingCorrections()
    pending.note({4: {1, 99}, 6: {2}}, object_ids=[1, 2])
    pending.note({4: {1}}, object_ids=[1, 2])
    assert len(pending) == 2
    pending.discard_object(2)
    assert pending.take() == [(4, 1)]
    assert len(pending) == 0 and pending.take() == []


def test_correction_segments_stop_before_the_next_confirmed_frame():
    from napari_samed2.labelset import Segment, correction_segments

    confirmed = {1: {2, 7}, 2: {12}}  # 7 was just corrected; 2 and 12 confirmed before
    assert correction_segments([7], confirmed, "both") == [
        Segment("forward", start=7, stop=11),
        Segment("backward", start=7, stop=3),
    ]
    assert correction_segments([12], confirmed, "forward") == [Segment("forward", 12, None)]
    assert correction_segments([2], confirmed, "backward") == [Segment("backward", 2, None)]
    # neighbours confirmed on both sides: nothing to re-run
    assert correction_segments([7], {1: {6, 7, 8}}, "both") == []


def test_a_segment_toward_a_present_frame_runs_from_it_not_from_absent():
    from napari_samed2.labelset import Segment, correction_segments

    confirmed = {1: {2, 7, 12}}  # 7 corrected to "absent"; 2 and 12 show the object
    assert correction_segments([7], confirmed, "both", absent=[7]) == [
        Segment("backward", start=12, stop=8),
        Segment("forward", start=2, stop=6),
    ]
    # past the last confirmed frame, "absent" carries on from the correction as before
    assert correction_segments([12], {1: {2, 12}}, "forward", absent=[12]) == [
        Segment("forward", 12, None)
    ]
    # absent on both sides: nothing to bring back, so the correction leads
    assert correction_segments([7], {1: {2, 7}}, "backward", absent=[2, 7]) == [
        Segment("backward", start=7, stop=3)
    ]
    # a confirmed neighbour: nothing between them to re-run
    assert correction_segments([7], {1: {6, 7}}, "backward", absent=[7]) == []
