"""The object list: each object is a label id in the output Labels layer, shown in its colour."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

ID_ROLE = Qt.ItemDataRole.UserRole


@dataclass
class TrackedObject:
    """One object the user segments: its label id (= the engine's obj_id) and a name."""

    obj_id: int
    name: str


class ObjectList(QWidget):
    """Add, select, rename (double-click) and delete objects.

    Signals carry label ids. ``colour_of`` maps a label id to an RGBA colour (the Labels
    layer's), so the list shows each object in the colour it has on the canvas.
    """

    selected = Signal(int)
    added = Signal(int)
    removed = Signal(int)
    renamed = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colour_of: Callable[[int], np.ndarray] | None = None
        self.list = QListWidget()
        self.list.setMaximumHeight(92)
        self.list.setToolTip("Objects: each is a label id. Double-click to rename.")
        self.add_button = QPushButton("Add object")
        self.add_button.setToolTip("New object with the next free label id")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected object and erase its labels")
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.list.currentItemChanged.connect(self._on_current_changed)
        self.list.itemChanged.connect(self._on_item_changed)

    # -- state ---------------------------------------------------------------------------------

    def objects(self) -> list[TrackedObject]:
        return [
            TrackedObject(int(item.data(ID_ROLE)), item.text())
            for item in (self.list.item(row) for row in range(self.list.count()))
        ]

    def ids(self) -> list[int]:
        return [obj.obj_id for obj in self.objects()]

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(ID_ROLE))

    def name_of(self, obj_id: int) -> str:
        item = self._item(obj_id)
        return f"object {obj_id}" if item is None else item.text()

    def _item(self, obj_id: int) -> QListWidgetItem | None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if int(item.data(ID_ROLE)) == obj_id:
                return item
        return None

    # -- changes -------------------------------------------------------------------------------

    def add(self, obj_id: int, name: str | None = None, select: bool = True) -> TrackedObject:
        """Add an object with label id ``obj_id`` (a no-op if it exists)."""
        if obj_id < 1:
            raise ValueError(f"an object's label id must be >= 1 (0 is background), got {obj_id}")
        item = self._item(obj_id)
        if item is None:
            item = QListWidgetItem(name or f"object {obj_id}")
            item.setData(ID_ROLE, int(obj_id))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            item.setIcon(self._swatch(obj_id))
            self.list.blockSignals(True)
            self.list.addItem(item)
            self.list.blockSignals(False)
            self.added.emit(int(obj_id))
        if select:
            self.list.setCurrentItem(item)
        return TrackedObject(obj_id, item.text())

    def remove(self, obj_id: int) -> None:
        item = self._item(obj_id)
        if item is None:
            return
        self.list.takeItem(self.list.row(item))
        self.removed.emit(int(obj_id))

    def rename(self, obj_id: int, name: str) -> None:
        item = self._item(obj_id)
        if item is not None:
            item.setText(name)

    def select(self, obj_id: int) -> None:
        item = self._item(obj_id)
        if item is not None:
            self.list.setCurrentItem(item)

    def clear(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        self.list.blockSignals(False)

    def refresh_colours(self) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            item.setIcon(self._swatch(int(item.data(ID_ROLE))))

    def _swatch(self, obj_id: int) -> QIcon:
        pixmap = QPixmap(14, 14)
        rgba = (0.5, 0.5, 0.5, 1.0) if self.colour_of is None else self.colour_of(obj_id)
        pixmap.fill(QColor.fromRgbF(*(float(c) for c in rgba[:3]), 1.0))
        return QIcon(pixmap)

    def _on_current_changed(self, current: QListWidgetItem | None, _previous) -> None:
        if current is not None:
            self.selected.emit(int(current.data(ID_ROLE)))

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        self.renamed.emit(int(item.data(ID_ROLE)), item.text())
