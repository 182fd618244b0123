"""The confidence strip: colours, threshold, weak frames, click to jump."""

from __future__ import annotations

import pytest
from qtpy.QtCore import QPoint, Qt
from qtpy.QtGui import QColor

from napari_samed2.ui.confidence_view import (
    CONFIRMED,
    NOT_REMEMBERED,
    REMEMBERED,
    WEAK,
    ConfidenceStrip,
    ConfidenceTrack,
)

pytestmark = pytest.mark.gui


def make_track() -> ConfidenceTrack:
    return ConfidenceTrack(
        num_frames=6,
        confidence={0: 0.95, 1: 0.9, 2: 0.3, 3: 0.7, 4: 0.1},
        in_memory={0: True, 1: True, 2: False, 3: False, 4: False},
        confirmed={0},
        threshold=0.5,
    )


def test_weak_frames_skip_confirmed_and_unpredicted_frames():
    track = make_track()
    track.confidence[5] = 0.2
    track.confirmed.add(5)
    assert track.weak_frames() == [2, 4]


def test_bars_are_coloured_by_memory_and_threshold(qtbot):
    strip = ConfidenceStrip()
    qtbot.addWidget(strip)
    strip.resize(320, 120)
    strip.set_track(make_track())
    image = strip.grab().toImage()
    bottom = strip.height() - strip.MARGIN_BOTTOM - 2

    def colour(frame: int) -> QColor:
        return image.pixelColor(round(strip.x_of_frame(frame)), bottom)

    assert colour(0) == CONFIRMED
    assert colour(1) == REMEMBERED
    assert colour(2) == WEAK
    assert colour(3) == NOT_REMEMBERED


def test_click_emits_the_frame(qtbot):
    strip = ConfidenceStrip()
    qtbot.addWidget(strip)
    strip.resize(320, 120)
    strip.set_track(make_track())
    strip.show()
    for frame in (0, 3, 5):
        with qtbot.waitSignal(strip.frame_clicked, timeout=2000) as blocker:
            qtbot.mouseClick(
                strip, Qt.MouseButton.LeftButton, pos=QPoint(round(strip.x_of_frame(frame)), 60)
            )
        assert blocker.args == [frame]
    assert strip.frame_at_x(2) is None  # the y-axis margin is not a frame
