"""A per-frame confidence strip: where the model is sure, where it doubts, what it remembers.

Frames run along x, confidence (0 to 1) along y. A bar's colour says whether the frame's
prediction entered the memory; a dashed line marks the memory threshold; user-confirmed frames
carry a marker; the current frame is outlined. Clicking a bar emits `frame_clicked`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qtpy.QtCore import QPointF, QRectF, Qt, Signal
from qtpy.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

REMEMBERED = QColor("#4cc38a")
NOT_REMEMBERED = QColor("#e8a33d")
WEAK = QColor("#e5534b")
CONFIRMED = QColor("#58a6ff")
NOT_RUN = QColor(90, 90, 90)
BACKGROUND = QColor("#1f2329")
GRID = QColor(255, 255, 255, 40)
TEXT = QColor(220, 220, 220)


@dataclass
class ConfidenceTrack:
    """What the strip draws for one object.

    Attributes
    ----------
    num_frames : int
        Frames on the x axis.
    confidence : dict of int to float
        Confidence in [0, 1] of each predicted frame.
    in_memory : dict of int to bool
        Whether the frame's prediction was written to memory.
    confirmed : set of int
        Frames the user prompted or corrected.
    threshold : float
        The memory's confidence threshold (dashed line).
    """

    num_frames: int = 0
    confidence: dict[int, float] = field(default_factory=dict)
    in_memory: dict[int, bool] = field(default_factory=dict)
    confirmed: set[int] = field(default_factory=set)
    threshold: float = 0.5

    def weak_frames(self) -> list[int]:
        """Predicted, unconfirmed frames under the threshold, in frame order."""
        return sorted(
            frame
            for frame, value in self.confidence.items()
            if value < self.threshold and frame not in self.confirmed
        )


class ConfidenceStrip(QWidget):
    """Bar plot of per-frame confidence; click a bar to go to that frame."""

    frame_clicked = Signal(int)

    MARGIN_LEFT = 28
    MARGIN_RIGHT = 6
    MARGIN_TOP = 26
    MARGIN_BOTTOM = 16
    LEGEND = (
        (REMEMBERED, "in memory"),
        (NOT_REMEMBERED, "not kept"),
        (WEAK, "weak"),
        (CONFIRMED, "yours"),
    )

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.track = ConfidenceTrack()
        self.current_frame: int | None = None
        self.title = "confidence"
        self.setMinimumHeight(130)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.setToolTip(
            "Per-frame confidence of the selected object. Green: kept in memory; "
            "orange: predicted but not remembered; red: under the threshold (dashed); "
            "blue triangle: frame you confirmed. Click a bar to go to that frame."
        )

    def set_track(self, track: ConfidenceTrack, title: str = "confidence") -> None:
        self.track = track
        self.title = title
        self.update()

    def set_current_frame(self, frame: int | None) -> None:
        if frame != self.current_frame:
            self.current_frame = frame
            self.update()

    # -- geometry ------------------------------------------------------------------------------

    def _plot_rect(self) -> QRectF:
        return QRectF(
            self.MARGIN_LEFT,
            self.MARGIN_TOP,
            max(1.0, self.width() - self.MARGIN_LEFT - self.MARGIN_RIGHT),
            max(1.0, self.height() - self.MARGIN_TOP - self.MARGIN_BOTTOM),
        )

    def frame_at_x(self, x: float) -> int | None:
        """The frame under horizontal position ``x`` (widget pixels), or None."""
        n = self.track.num_frames
        rect = self._plot_rect()
        if n <= 0 or not rect.left() <= x <= rect.right():
            return None
        frame = int((x - rect.left()) / rect.width() * n)
        return min(max(frame, 0), n - 1)

    def x_of_frame(self, frame: int) -> float:
        """Centre of ``frame``'s bar in widget pixels."""
        rect = self._plot_rect()
        n = max(self.track.num_frames, 1)
        return rect.left() + (frame + 0.5) * rect.width() / n

    # -- Qt events -----------------------------------------------------------------------------

    def mousePressEvent(self, event) -> None:  # Qt override
        position = event.position() if hasattr(event, "position") else event.pos()
        frame = self.frame_at_x(position.x())
        if frame is not None:
            self.frame_clicked.emit(frame)

    def mouseMoveEvent(self, event) -> None:  # Qt override
        position = event.position() if hasattr(event, "position") else event.pos()
        frame = self.frame_at_x(position.x())
        if frame is None:
            return
        value = self.track.confidence.get(frame)
        text = f"frame {frame}: " + ("not predicted" if value is None else f"{value:.2f}")
        if frame in self.track.confirmed:
            text += " (confirmed)"
        elif self.track.in_memory.get(frame):
            text += " (in memory)"
        self.setToolTip(text)

    def paintEvent(self, event) -> None:  # Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), BACKGROUND)
        rect = self._plot_rect()
        track = self.track
        font = QFont(painter.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
        painter.setFont(font)
        painter.setPen(TEXT)
        painter.drawText(QPointF(4, 12), self.title)
        self._draw_legend(painter)
        for value in (0.0, 0.5, 1.0):
            y = rect.bottom() - value * rect.height()
            painter.setPen(QPen(GRID, 1))
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
            painter.setPen(TEXT)
            painter.drawText(QPointF(2, y + 4), f"{value:.1f}")
        n = track.num_frames
        if n > 0:
            width = rect.width() / n
            gap = 1.0 if width > 4 else 0.0
            for frame in range(n):
                left = rect.left() + frame * width
                value = track.confidence.get(frame)
                if value is None:
                    painter.fillRect(
                        QRectF(left + gap / 2, rect.bottom() - 2, width - gap, 2), NOT_RUN
                    )
                    continue
                value = min(max(float(value), 0.0), 1.0)
                if frame in track.confirmed:
                    colour = CONFIRMED
                elif value < track.threshold:
                    colour = WEAK
                elif track.in_memory.get(frame):
                    colour = REMEMBERED
                else:
                    colour = NOT_REMEMBERED
                height = max(2.0, value * rect.height())
                painter.fillRect(
                    QRectF(left + gap / 2, rect.bottom() - height, width - gap, height), colour
                )
            for frame in track.confirmed:
                if 0 <= frame < n:
                    x = self.x_of_frame(frame)
                    top = rect.top() - 2
                    painter.setBrush(CONFIRMED)
                    painter.setPen(Qt.PenStyle.NoPen)
                    painter.drawPolygon(
                        QPolygonF(
                            [QPointF(x - 4, top - 6), QPointF(x + 4, top - 6), QPointF(x, top)]
                        )
                    )
            y = rect.bottom() - track.threshold * rect.height()
            pen = QPen(QColor("#ffffff"), 1, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
            if self.current_frame is not None and 0 <= self.current_frame < n:
                left = rect.left() + self.current_frame * width
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.setPen(QPen(QColor("#ffffff"), 1.5))
                painter.drawRect(QRectF(left, rect.top(), max(width, 2.0), rect.height()))
            painter.setPen(TEXT)
            painter.drawText(QPointF(rect.left(), self.height() - 2), "0")
            label = str(n - 1)
            advance = painter.fontMetrics().horizontalAdvance(label)
            painter.drawText(QPointF(rect.right() - advance, self.height() - 2), label)
        else:
            painter.setPen(TEXT)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "no predictions yet")
        painter.end()

    def _draw_legend(self, painter: QPainter) -> None:
        """Colour keys on the bottom line, centred between the first and last frame numbers."""
        metrics = painter.fontMetrics()
        widths = [14 + metrics.horizontalAdvance(text) for _, text in self.LEGEND]
        gap = 10
        x = (self.width() - (sum(widths) + gap * (len(widths) - 1))) / 2
        baseline = self.height() - 2
        for (colour, text), width in zip(self.LEGEND, widths, strict=True):
            painter.fillRect(QRectF(x, baseline - 8, 8, 8), colour)
            painter.setPen(TEXT)
            painter.drawText(QPointF(x + 11, baseline), text)
            x += width + gap
