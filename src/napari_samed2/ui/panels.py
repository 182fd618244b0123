"""The annotator's group boxes: which image, which objects and prompts, which action, review.

Each panel only lays out its controls and fills its combo boxes from plain values; the widget
(`widget.py`) connects them to the engine and the layers.
"""

from __future__ import annotations

from collections.abc import Sequence

from napari.layers import Image, Labels
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..engine.options import MemoryMode
from .confidence_view import ConfidenceStrip
from .frames import axis_kind, infer_frame_axis
from .objects import ObjectList
from .shortcuts import SHORTCUTS

NEW_LABELS = "new Labels layer"
MEMORY_NAMES = {MemoryMode.SELECTIVE: "selective", MemoryMode.SAM2: "stock SAM2"}
CORRECTION_DIRECTIONS = ("both", "forward", "backward")


def label_shape(image: Image) -> tuple[int, ...]:
    """Shape of a Labels layer for ``image`` (the channel axis of RGB images dropped)."""
    shape = tuple(image.data.shape)
    return shape[:-1] if image.rgb else shape


def shrinkable(combo: QComboBox, characters: int = 8) -> QComboBox:
    """Let ``combo`` be narrower than its longest item (the dock can be narrow)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    return combo


def _select_data(combo: QComboBox, value) -> None:
    for index in range(combo.count()):
        if combo.itemData(index) == value:
            combo.setCurrentIndex(index)
            return


class ImagePanel(QGroupBox):
    """Image layer, frame axis and output Labels layer pickers (items carry ``id(layer)``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Image", parent)
        self.image_combo = shrinkable(QComboBox())
        self.image_combo.setToolTip("The image layer to segment")
        self.axis_combo = shrinkable(QComboBox())
        self.axis_combo.setToolTip(
            "Axis walked by propagation: Z for volumes, T for time-lapses (asked for 4-D data)"
        )
        self.labels_combo = shrinkable(QComboBox())
        self.labels_combo.setToolTip(
            "Where masks are written. Choosing an existing Labels layer keeps its other labels "
            "untouched; its label ids become objects."
        )
        grid = QGridLayout(self)
        for row, (text, combo) in enumerate(
            (
                ("Image", self.image_combo),
                ("Frame axis", self.axis_combo),
                ("Labels", self.labels_combo),
            )
        ):
            grid.addWidget(QLabel(text), row, 0)
            grid.addWidget(combo, row, 1)
            grid.setColumnStretch(1, 1)

    def show_images(self, images: Sequence[Image], current: Image | None) -> None:
        """List ``images`` and select ``current`` without emitting change signals."""
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        for layer in images:
            self.image_combo.addItem(layer.name, id(layer))
        if current is not None:
            _select_data(self.image_combo, id(current))
        self.image_combo.blockSignals(False)

    def show_axes(self, image: Image | None, frame_axis: int | None) -> None:
        """Offer ``image``'s possible frame axes; 4-D data starts with a "choose" item."""
        self.axis_combo.clear()
        if image is None:
            return
        inference = infer_frame_axis(image.data.shape, image.rgb, image.axis_labels)
        if not inference.candidates:
            self.axis_combo.addItem("single 2-D image", None)
            self.axis_combo.setEnabled(False)
            return
        self.axis_combo.setEnabled(True)
        if inference.needs_choice:
            self.axis_combo.addItem("choose the axis to propagate along…", None)
        for axis in inference.candidates:
            kind = axis_kind(image.axis_labels, axis)
            label = str(image.axis_labels[axis]) if axis < len(image.axis_labels) else ""
            # napari's default labels are "-3", "-2"…: not worth showing
            named = f"'{label}', " if label and not label.lstrip("-").isdigit() else ""
            self.axis_combo.addItem(
                f"{kind} · axis {axis} ({named}{image.data.shape[axis]} frames)", axis
            )
        _select_data(self.axis_combo, frame_axis)

    def show_labels(
        self, layers: Sequence[Labels], image: Image | None, current: Labels | None
    ) -> None:
        """Offer "new" and the Labels layers whose shape fits ``image``."""
        self.labels_combo.clear()
        self.labels_combo.addItem(NEW_LABELS, None)
        if image is None:
            return
        shape = label_shape(image)
        for layer in layers:
            if tuple(layer.data.shape) == shape:
                self.labels_combo.addItem(layer.name, id(layer))
        if current is not None:
            _select_data(self.labels_combo, id(current))


class ObjectsPanel(QGroupBox):
    """The object list and the buttons that start placing prompts."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Objects and prompts", parent)
        self.object_list = ObjectList()
        self.positive_button = QPushButton("+ point")
        self.positive_button.setToolTip("Click on the object to add positive points (green)")
        self.negative_button = QPushButton("− point")
        self.negative_button.setToolTip(
            "Click on background to add negative points (red); T toggles the sign"
        )
        self.box_button = QPushButton("Box")
        self.box_button.setToolTip("Drag a rectangle around the object")
        row = QHBoxLayout()
        for button in (self.positive_button, self.negative_button, self.box_button):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.object_list)
        layout.addLayout(row)


class ActionsPanel(QGroupBox):
    """Segment, propagate, stop and accept buttons, labelled with their shortcuts."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Segment and propagate", parent)
        self.segment_button = QPushButton("Segment frame  ⇧S")
        self.backward_button = QPushButton("◀ Back  ⇧B")
        self.both_button = QPushButton("◀▶ Both  ⇧D")
        self.forward_button = QPushButton("Fwd ▶  ⇧F")
        self.stop_button = QPushButton("■ Stop  ⇧X")
        self.accept_button = QPushButton("Accept correction  ⇧C")
        self.direction_combo = shrinkable(QComboBox(), 5)
        self.direction_combo.addItems(CORRECTION_DIRECTIONS)
        self.direction_combo.setToolTip(
            "Direction in which an accepted correction is re-propagated (up to the next "
            "frame you confirmed)"
        )
        for button, key in (
            (self.segment_button, "Shift-S"),
            (self.backward_button, "Shift-B"),
            (self.both_button, "Shift-D"),
            (self.forward_button, "Shift-F"),
            (self.stop_button, "Shift-X"),
            (self.accept_button, "Shift-C"),
        ):
            button.setToolTip(f"{SHORTCUTS[key][1].capitalize()} ({key})")
        self.memory_combo = shrinkable(QComboBox())
        for mode in MemoryMode:
            self.memory_combo.addItem(MEMORY_NAMES[mode], mode.value)
        self.memory_combo.setToolTip(
            "selective: only frames above the gate enter the memory, corrections and confident "
            "frames join a long-term bank (SAMed-2). stock SAM2: every frame is remembered. "
            "Changing it restarts the image's session (labels stay)."
        )
        self.gate_spin = QDoubleSpinBox()
        self.gate_spin.setRange(0.0, 1.0)
        self.gate_spin.setSingleStep(0.05)
        self.gate_spin.setDecimals(2)
        self.gate_spin.setValue(0.5)
        self.gate_spin.setPrefix("≥ ")
        self.gate_spin.setToolTip(
            "Gate: the confidence a frame needs to enter the memory (the dashed line of the "
            "confidence strip); frames under it are 'weak'"
        )
        self.zoom_check = QCheckBox("Zoom to each object")
        self.zoom_check.setToolTip(
            "Each object gets its own region of the frames, sized to it at its first prompt: "
            "small objects in large images are seen magnified. Later clicks on an object must "
            "fall inside its region. Changing it restarts the image's session (labels stay)."
        )
        self.connected_check = QCheckBox("Keep masks connected between frames")
        self.connected_check.setChecked(True)
        self.connected_check.setToolTip(
            "While propagating, drop the parts of a mask that do not touch the object's mask on "
            "the frame before: islands on look-alike objects are not shown or followed. Switch "
            "off for objects that branch (a vessel whose branch appears beside it)."
        )
        self.motion_check = QCheckBox("Follow motion (time-lapse, video)")
        self.motion_check.setToolTip(
            "While propagating, move the mask handed from frame to frame by the object's motion "
            "(models that hand it on, like samed2-nano). On by itself when the frame axis is "
            "labelled as time; leave off for volumes, whose slices change shape, not place."
        )
        self.ends_once_check = QCheckBox("Objects end once (volumes)")
        self.ends_once_check.setToolTip(
            "While propagating, once an object's mask is empty on two slices in a row (or on one "
            "you marked empty), the slices beyond, away from its prompts, are left empty: in a "
            "volume an object fills one run of slices, so the "
            "neighbour above or below it is not taken for it. On by itself for depth axes with "
            "models measured for it (samed2-nano); leave off where objects leave and come back."
        )
        grid = QGridLayout(self)
        grid.addWidget(self.zoom_check, 5, 0, 1, 3)
        grid.addWidget(self.connected_check, 6, 0, 1, 3)
        grid.addWidget(self.motion_check, 7, 0, 1, 3)
        grid.addWidget(self.ends_once_check, 8, 0, 1, 3)
        grid.addWidget(QLabel("Memory"), 4, 0)
        grid.addWidget(self.memory_combo, 4, 1)
        grid.addWidget(self.gate_spin, 4, 2)
        grid.addWidget(self.segment_button, 0, 0, 1, 3)
        grid.addWidget(self.backward_button, 1, 0)
        grid.addWidget(self.both_button, 1, 1)
        grid.addWidget(self.forward_button, 1, 2)
        grid.addWidget(self.stop_button, 2, 0, 1, 3)
        grid.addWidget(self.accept_button, 3, 0, 1, 2)
        grid.addWidget(self.direction_combo, 3, 2)


class ReviewPanel(QGroupBox):
    """The confidence strip, the "next weak frame" button and the status line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Review", parent)
        self.confidence = ConfidenceStrip()
        self.weak_button = QPushButton("Next weak frame  ⇧W")
        self.weak_button.setToolTip(f"{SHORTCUTS['Shift-W'][1].capitalize()} (Shift-W)")
        self.status = QLabel("Load a model, pick an image, add an object and click on it.")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.confidence)
        layout.addWidget(self.weak_button)
        layout.addWidget(self.status)


def scrolling_column(boxes: Sequence[QWidget]) -> QScrollArea:
    """``boxes`` one under the other in a vertically scrolling area."""
    content = QWidget()
    column = QVBoxLayout(content)
    for box in boxes:
        column.addWidget(box)
    column.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(content)
    return scroll
