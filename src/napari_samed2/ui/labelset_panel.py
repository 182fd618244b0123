"""The annotator's label-set box: choose the set, see its size, add this frame or every
confirmed frame, autosave accepted corrections, learn from them now, open the fine-tuning
panel.

One frame is written inline (two small TIFFs, well under a tenth of a second); a batch goes
to a worker thread. Errors (a locked set, a full disk, labels that do not fit the image) are
napari notifications.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QWidget,
)

from ..labelset import LabelSet, LabelSetError, LabelSetLockedError
from ..labelset.format import MANIFEST
from .labelset_entries import FrameRecord, WriteReport, frame_record, set_counts, write_records
from .messages import plain_message

if TYPE_CHECKING:
    from .widget import SAMed2Widget

WRITE_ERRORS = (LabelSetError, LabelSetLockedError, OSError, ValueError, KeyError)


class LabelSetPanel(QGroupBox):
    """Label-set controls of the annotator ``widget``.

    Signals
    -------
    written(WriteReport)
        After each write to the set (inline or from the worker).
    """

    written = Signal(object)

    def __init__(self, widget: SAMed2Widget, parent: QWidget | None = None) -> None:
        super().__init__("Label set", parent)
        self._widget = widget
        self.labelset: LabelSet | None = None
        self.worker = None
        self.choose_button = QPushButton("Choose or create…")
        self.choose_button.setToolTip("A folder holding a label set, or an empty one for a new set")
        self.name_label = QLabel("no label set")
        self.name_label.setWordWrap(True)
        self.size_label = QLabel("")
        self.add_frame_button = QPushButton("Add this frame")
        self.add_frame_button.setToolTip(
            "Add the current frame (image and labels) as a complete frame: every object on "
            "it is labelled. A frame added again replaces its earlier entry."
        )
        self.add_confirmed_button = QPushButton("Add all confirmed frames")
        self.add_confirmed_button.setToolTip("Every frame you prompted or corrected")
        self.autosave_check = QCheckBox("Autosave corrections")
        self.autosave_check.setToolTip(
            "Add each frame as you accept its correction, so nothing you fixed is lost"
        )
        self.learn_button = QPushButton("Learn from my corrections")
        self.learn_button.setToolTip(
            "Fine-tune the model's decoder on this image's entries for a short time, use the "
            "new weights at once and re-propagate"
        )
        self.finetune_button = QPushButton("Fine-tuning…")
        layout = QGridLayout(self)
        layout.addWidget(self.choose_button, 0, 0)
        layout.addWidget(self.name_label, 0, 1)
        layout.addWidget(self.size_label, 1, 0, 1, 2)
        layout.addWidget(self.add_frame_button, 2, 0)
        layout.addWidget(self.add_confirmed_button, 2, 1)
        layout.addWidget(self.autosave_check, 3, 0, 1, 2)
        layout.addWidget(self.learn_button, 4, 0)
        layout.addWidget(self.finetune_button, 4, 1)
        self.choose_button.clicked.connect(self.choose)
        self.add_frame_button.clicked.connect(self.add_this_frame)
        self.add_confirmed_button.clicked.connect(self.add_confirmed_frames)
        self.update_enabled()

    # the set ------------------------------------------------------------------------------------

    def choose(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose or create a label set folder")
        if path:
            self.set_labelset(path)

    def set_labelset(self, labelset: LabelSet | str | os.PathLike | None) -> LabelSet | None:
        """Use ``labelset`` (a `LabelSet`, a set's folder, or an empty or new folder: a new
        set is made there); None: no set. Returns the set, or None after a notified error."""
        if labelset is not None and not isinstance(labelset, LabelSet):
            path = Path(labelset)
            try:
                if (path / MANIFEST).exists():
                    labelset = LabelSet.open(path)
                else:
                    labelset = LabelSet.create(path)
            except (LabelSetError, FileExistsError, OSError) as error:
                show_error(plain_message(error, "This folder cannot hold a label set"))
                return None
        self.labelset = labelset
        self.name_label.setText("no label set" if labelset is None else str(labelset.path))
        self.refresh_size()
        self.update_enabled()
        return labelset

    def refresh_size(self) -> None:
        if self.labelset is None:
            self.size_label.setText("")
            return
        try:
            entries, objects = set_counts(self.labelset)
        except (LabelSetError, OSError) as error:
            self.size_label.setText(plain_message(error, "unreadable"))
            return
        self.size_label.setText(f"{entries} entries · {objects} objects")

    def update_enabled(self) -> None:
        has_set = self.labelset is not None
        idle = self.worker is None
        for button in (self.add_frame_button, self.add_confirmed_button, self.learn_button):
            button.setEnabled(has_set and idle)
        self.autosave_check.setEnabled(has_set)

    # adding -------------------------------------------------------------------------------------

    def add_this_frame(self) -> WriteReport | None:
        """Add the current frame of the current image (inline: one small write)."""
        if self._busy():
            return None
        record = self._records([None])
        return None if record is None else self._write(record)

    def add_confirmed_frames(self) -> None:
        """Add every frame the user prompted or corrected, in a worker thread."""
        if self._busy():
            return
        state = self._widget.state
        confirmed = state.confirmed() if state is not None else {}
        frames = sorted(set().union(*confirmed.values())) if confirmed else []
        if not frames:
            show_info("No confirmed frame yet: prompt or correct a frame first.")
            return
        records = self._records(frames)
        if records is None:
            return
        labelset = self.labelset
        self.worker = create_worker(write_records, labelset, records, _ignore_errors=True)
        self.worker.returned.connect(self._on_written)
        self.worker.errored.connect(lambda error: _notify(error, "Adding the frames failed"))
        self.worker.finished.connect(self._on_worker_finished)
        self._widget.status.setText(f"Adding {len(records)} frames to the label set…")
        self.update_enabled()
        self.worker.start()

    def on_accepted(self, accepted: list) -> None:
        """Autosave: append each corrected frame the moment the user accepts it."""
        if not self.autosave_check.isChecked() or not accepted:
            return
        if self.labelset is None:
            show_warning("Autosave is on but no label set is chosen: the correction is not saved.")
            return
        state = self._widget.state
        corrected: dict[int, set[int]] = {}
        for item in accepted:
            if state is not None and item.image_name == state.image.name:
                corrected.setdefault(int(item.frame), set()).add(int(item.obj_id))
        if not corrected:
            return
        records = self._records(sorted(corrected), corrected)
        if records is not None:
            self._write(records)

    def _busy(self) -> bool:
        """True (and a notice) while a run changes the session and the labels."""
        if self._widget.run is None:
            return False
        show_info("Wait for the running job to finish, or stop it (⇧X), then add frames.")
        return True

    def _records(
        self, frames: list[int | None], corrected: dict[int, set[int]] | None = None
    ) -> list[FrameRecord] | None:
        """The records of ``frames`` (None: the current frame) of the current image."""
        widget = self._widget
        if self.labelset is None:
            show_error("Choose a label set first (Label set ▸ Choose or create…).")
            return None
        state = widget._require_state()
        if state is None:
            return None
        if state.labels is None:
            show_error("Nothing to add: this image has no Labels layer yet.")
            return None
        try:
            geometry = state.geometry or widget.layer_binding.geometry(state)
            confirmed = state.confirmed()
            records = []
            for frame in frames:
                frame = widget.current_frame() if frame is None else frame
                objects = (corrected or {}).get(frame, ())
                records.append(
                    frame_record(state, geometry, frame, widget.model, objects, confirmed)
                )
        except (ValueError, IndexError) as error:
            show_error(plain_message(error, "This frame cannot be added"))
            return None
        return records

    def _write(self, records: list[FrameRecord]) -> WriteReport | None:
        try:
            report = write_records(self.labelset, records)
        except WRITE_ERRORS as error:
            _notify(error, "Adding to the label set failed")
            return None
        self._on_written(report)
        return report

    def _on_written(self, report: WriteReport) -> None:
        self.refresh_size()
        replaced = f" (replacing {report.replaced} earlier)" if report.replaced else ""
        self._widget.status.setText(
            f"Label set: added {len(report.added)} frame(s){replaced}. {self.size_label.text()}"
        )
        self.written.emit(report)

    def _on_worker_finished(self) -> None:
        self.worker = None
        self.update_enabled()


def _notify(error: BaseException, context: str) -> None:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        show_error(f"{context}: the disk is full ({error}); free some space and add it again.")
    else:
        show_error(plain_message(error, context))
