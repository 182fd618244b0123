"""The fine-tuning dock widget: pick a label set, a base model, what trains, a time budget and
a held-out share; train in a worker thread with a progress bar (step, loss, held-out Dice);
Stop keeps the best weights so far; "Use this model" switches the annotator's open images to
the new model and re-propagates their objects.

It is its own napari widget (Plugins ▸ SAMed-2 fine-tuning) and the annotator's
"Fine-tuning…" button opens it linked to that annotator.
"""

from __future__ import annotations

import tempfile
import threading
from datetime import datetime
from pathlib import Path

import napari
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..learn_now import base_reference, import_training_modules
from ..model import DEFAULT_MODEL, REGISTRY, LoadedModel, load_model
from ..model.user_models import user_models
from ..train.trainable import TRAINABLE_CHOICES
from .messages import plain_message
from .panels import shrinkable

DISPLAY_NAME = "SAMed-2 fine-tuning"
ANNOTATOR_MODEL = "annotator's model"
BROWSE = "Checkpoint file…"
PROGRESS_STEPS = 1000


class FinetunePanel(QWidget):
    """Fine-tune a model on a label set without blocking napari.

    Signals
    -------
    progressed(FinetuneProgress)
        Each report of the running fine-tune, delivered in the GUI thread.
    finished(object)
        The `FinetuneResult`, or the exception that ended the run.
    model_used(LoadedModel)
        After "Use this model" switched the annotator to the new model.
    """

    progressed = Signal(object)
    finished = Signal(object)
    model_used = Signal(object)

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.annotator = None  # SAMed2Widget; found in the viewer's docks when not given
        self.worker = None
        self.result = None
        self.steps: int | None = None  # a step budget (scripts, tests) on top of the minutes
        self.settings = None  # FinetuneSettings; None: the defaults
        self._stop = threading.Event()
        self._build()
        self.progressed.connect(self._show_progress)

    def _build(self) -> None:
        self.labelset_edit = QLineEdit()
        self.labelset_edit.setPlaceholderText("label set folder")
        browse_set = QPushButton("…")
        browse_set.clicked.connect(self._browse_labelset)
        set_row = QHBoxLayout()
        set_row.addWidget(self.labelset_edit, 1)
        set_row.addWidget(browse_set)
        self.base_combo = shrinkable(QComboBox())
        self.refresh_bases()
        self.base_combo.activated.connect(self._on_base_activated)
        self.train_combo = QComboBox()
        self.train_combo.addItems(list(TRAINABLE_CHOICES))
        self.train_combo.setToolTip(
            "decoder: mask decoder, memory modules and object heads (the image encoder stays, "
            "so cached features stay valid); adapters: also SAMed-2's temporal adapters; "
            "all: everything"
        )
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setRange(0.1, 600.0)
        self.minutes_spin.setValue(5.0)
        self.minutes_spin.setSuffix(" min")
        self.holdout_spin = QDoubleSpinBox()
        self.holdout_spin.setRange(0.0, 0.9)
        self.holdout_spin.setSingleStep(0.05)
        self.holdout_spin.setValue(0.2)
        self.holdout_spin.setToolTip("Share of the set's objects held out to keep the best weights")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("automatic (in the model cache)")
        form = QFormLayout()
        form.addRow("Label set", set_row)
        form.addRow("Base model", self.base_combo)
        form.addRow("What trains", self.train_combo)
        form.addRow("Time budget", self.minutes_spin)
        form.addRow("Held out", self.holdout_spin)
        form.addRow("Save as", self.out_edit)
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop (keep the best)")
        self.use_button = QPushButton("Use this model")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, PROGRESS_STEPS)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(self.use_button)
        layout.addStretch(1)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.use_button.clicked.connect(self.use_model)
        self._update_enabled()

    # choices ------------------------------------------------------------------------------------

    def refresh_bases(self) -> None:
        """The base list: the annotator's model, registry names, fine-tuned models, a file."""
        current = self.base_combo.currentData()
        self.base_combo.clear()
        self.base_combo.addItem(ANNOTATOR_MODEL, ANNOTATOR_MODEL)
        for name in sorted(REGISTRY, key=lambda n: (n != DEFAULT_MODEL, n)):
            self.base_combo.addItem(name, name)
        for model in user_models():
            self.base_combo.addItem(f"{model.name} (fine-tuned)", str(model.path))
        self.base_combo.addItem(BROWSE, None)
        index = self.base_combo.findData(current) if current is not None else -1
        self.base_combo.setCurrentIndex(max(index, 0))

    def _browse_labelset(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a label set folder")
        if path:
            self.labelset_edit.setText(path)

    def _on_base_activated(self, index: int) -> None:
        if self.base_combo.itemData(index) is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open a checkpoint", "", "Checkpoints (*.pt *.pth *.safetensors)"
            )
            if path:
                self.set_base(path)

    def set_base(self, base: str | Path) -> None:
        """Choose a registry name, a checkpoint file or `ANNOTATOR_MODEL` as the base."""
        base = str(base)
        index = self.base_combo.findData(base)
        if index < 0:
            self.base_combo.insertItem(self.base_combo.count() - 1, Path(base).name, base)
            index = self.base_combo.count() - 2
        self.base_combo.setCurrentIndex(index)

    def link(self, annotator) -> None:
        """Work with ``annotator``: its label set and model are the defaults."""
        self.annotator = annotator
        labelset = annotator.labelset_panel.labelset
        if labelset is not None and not self.labelset_edit.text():
            self.labelset_edit.setText(str(labelset.path))

    def find_annotator(self):
        """The annotator this panel works with (linked, or the viewer's docked one)."""
        if self.annotator is None:
            from .widget import SAMed2Widget

            docks = getattr(self.viewer.window, "_dock_widgets", {})
            for dock in list(docks.values()):
                inner = dock.widget() if hasattr(dock, "widget") else None
                if isinstance(inner, SAMed2Widget):
                    self.annotator = inner
                    break
        return self.annotator

    # the run ------------------------------------------------------------------------------------

    def start(self) -> bool:
        """Start fine-tuning in a worker thread; False (notified) when it cannot start."""
        if self.worker is not None:
            show_info("A fine-tune is already running.")
            return False
        labelset = self.labelset_edit.text().strip()
        if not labelset:
            show_error("Choose a label set to fine-tune on.")
            return False
        base = self.base_combo.currentData()
        if base == ANNOTATOR_MODEL:
            annotator = self.find_annotator()
            base = annotator.model if annotator is not None else None
            if base is None:
                show_error("The annotator has no model loaded: load one or choose a base model.")
                return False
        if base is None:
            show_error("Choose a base model.")
            return False
        out = Path(self.out_edit.text().strip() or _default_out(base, labelset))
        import_training_modules()
        self._stop.clear()
        self.result = None
        self.worker = create_worker(
            run_finetune,
            labelset,
            base,
            out,
            minutes=self.minutes_spin.value(),
            steps=self.steps,
            train=self.train_combo.currentText(),
            holdout=self.holdout_spin.value(),
            device=str(base.device) if isinstance(base, LoadedModel) else "auto",
            progress=self.progressed.emit,  # from the worker: Qt queues it to the GUI thread
            stop=self._stop,
            settings=self.settings,
            _ignore_errors=True,
        )
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_worker_finished)
        self.progress_bar.setValue(0)
        self.status.setText(f"Fine-tuning → {out}")
        self.worker.start()
        self._update_enabled()
        return True

    def stop(self) -> None:
        """End the run after the current step; the best weights so far are written."""
        if self.worker is not None:
            self._stop.set()
            self.status.setText("Stopping after this step; keeping the best weights…")

    def _show_progress(self, report) -> None:
        self.progress_bar.setValue(round(report.fraction * PROGRESS_STEPS))
        parts = [f"step {report.step}" + (f"/{report.steps}" if report.steps else "")]
        if report.loss is not None:
            parts.append(f"loss {report.loss:.3f}")
        if report.heldout_dice is not None:
            parts.append(f"held-out Dice {report.heldout_dice:.3f}")
        if report.best_dice is not None:
            parts.append(f"best {report.best_dice:.3f} (step {report.best_step})")
        self.status.setText(" · ".join(parts))

    def _on_returned(self, result) -> None:
        self.result = result
        before, after = result.heldout_before, result.heldout_after
        score = (
            f"held-out Dice {before:.3f} → {after:.3f} (step {result.best_step} kept)"
            if before is not None and after is not None
            else "no held-out objects: the last weights are kept"
        )
        self.progress_bar.setValue(PROGRESS_STEPS)
        self.status.setText(
            f"Done ({result.stopped_by}, {result.steps} steps): {score}. Saved {result.path}"
        )
        self.refresh_bases()
        annotator = self.find_annotator()
        if annotator is not None:
            annotator.model_picker.refresh_finetuned()
        self.finished.emit(result)

    def _on_error(self, error: BaseException) -> None:
        show_error(plain_message(error, "Fine-tuning failed"))
        self.status.setText("Fine-tuning failed; see the notification.")
        self.finished.emit(error)

    def _on_worker_finished(self) -> None:
        self.worker = None
        self._update_enabled()

    def _update_enabled(self) -> None:
        running = self.worker is not None
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.use_button.setEnabled(not running and self.result is not None)

    # using the result ---------------------------------------------------------------------------

    def use_model(self) -> bool:
        """Load the new model, switch the annotator's images to it and re-propagate their
        objects; False (notified) when it cannot."""
        annotator = self.find_annotator()
        if self.result is None or self.result.path is None:
            show_error("No fine-tuned model yet: start a fine-tune first.")
            return False
        if annotator is None:
            show_error("Open the SAMed-2 annotator to use the model there.")
            return False
        if annotator.run is not None:
            show_warning("Stop the running propagation before changing the model.")
            return False
        current = annotator.model
        device = str(current.device) if current is not None else "auto"
        # the precision the annotator runs in (measured for this architecture already)
        precision = current.precision if current is not None else None
        worker = create_worker(
            load_model,
            self.result.path,
            device,
            precision=precision,
            progressbar=False,
            _ignore_errors=True,
        )
        worker.returned.connect(lambda loaded: self._switch(annotator, loaded))
        worker.errored.connect(lambda error: show_error(plain_message(error, "Loading failed")))
        self.use_button.setEnabled(False)
        self._loader = worker  # kept alive until it ends
        worker.start()
        return True

    def _switch(self, annotator, loaded: LoadedModel) -> None:
        from .reprompt import Repropagation

        jobs = [(state, state.confirmed()) for state in annotator.states.values()]
        annotator.set_model(loaded)
        self._update_enabled()
        if annotator.model is not loaded:
            return  # refused (a run started meanwhile); set_model said why
        self.repropagation = Repropagation(annotator, jobs)
        self.repropagation.start()
        self.status.setText(f"Using {loaded.name}; re-propagating the open objects.")
        self.model_used.emit(loaded)


def run_finetune(labelset, base, out, **options):
    """`train.finetune` with ``base`` a name, a file, or a `LoadedModel` (written to a
    temporary checkpoint first when it has no file). Runs in the panel's worker."""
    from ..train.finetune import finetune

    if isinstance(base, LoadedModel):
        with tempfile.TemporaryDirectory(prefix="samed2-base-") as scratch:
            return finetune(labelset, base_reference(base, scratch), out, **options)
    return finetune(labelset, base, out, **options)


def _default_out(base, labelset: str) -> Path:
    from ..model import cache_dir

    name = base.name if isinstance(base, LoadedModel) else Path(str(base)).stem
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(cache_dir()) / "finetuned" / f"{name}-{Path(labelset).name}-{stamp}.safetensors"


def open_finetuning(annotator) -> FinetunePanel:
    """Dock (or show) the fine-tuning panel in ``annotator``'s viewer, linked to it."""
    _, panel = annotator.viewer.window.add_plugin_dock_widget("napari-samed2", DISPLAY_NAME)
    panel.link(annotator)
    return panel


__all__ = ["DISPLAY_NAME", "FinetunePanel", "open_finetuning", "run_finetune"]
