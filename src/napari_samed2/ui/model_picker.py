"""Model, device and precision picker: registry names or a local checkpoint, loaded in a worker
thread; the model line says what runs (size, device, precision and why, profile)."""

from __future__ import annotations

from pathlib import Path

from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from ..model import (
    DEFAULT_MODEL,
    REGISTRY,
    LoadedModel,
    ModelProfile,
    available_devices,
    load_model,
)
from ..model.user_models import user_models
from .messages import plain_message
from .panels import shrinkable

BROWSE = "Local checkpoint…"
# shown -> load_model's precision; "default" is bf16 on CUDA, auto on CPU, fp32 on MPS
PRECISIONS = {"default": None, "auto": "auto", "fp32": "fp32", "bf16": "bf16"}


class ModelPicker(QWidget):
    """Pick a model, a device and a precision, load it off the GUI thread, emit
    `model_loaded`."""

    model_loaded = Signal(object)  # LoadedModel
    load_failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_combo = shrinkable(QComboBox())
        names = sorted(REGISTRY, key=lambda name: (name != DEFAULT_MODEL, name))
        for name in names:
            self.model_combo.addItem(name, name)
            self.model_combo.setItemData(
                self.model_combo.count() - 1,
                REGISTRY[name].description,
                Qt.ItemDataRole.ToolTipRole,
            )
        self.model_combo.addItem(BROWSE, None)
        self.refresh_finetuned()
        self.model_combo.setToolTip(
            "Registry models download on first use (SAMed-2 needs a manual download); "
            "choose 'Local checkpoint…' for a .pt/.pth/.safetensors file"
        )
        self.device_combo = shrinkable(QComboBox(), 5)
        self.device_combo.addItems(["auto", *available_devices()])
        self.device_combo.setToolTip("auto: CUDA, then Apple MPS, then CPU")
        self.precision_combo = shrinkable(QComboBox(), 5)
        self.precision_combo.addItems(list(PRECISIONS))
        self.precision_combo.setToolTip(
            "default: bf16 on CUDA, auto on CPU, fp32 on Apple MPS. auto: bf16 where it is "
            "measured faster on this machine and gives the same masks, else fp32 (measured on "
            "the first load of a model size, seconds, then remembered). fp32: exact. bf16: "
            "faster on GPUs and CPUs with bf16 units, several times slower on other CPUs"
        )
        self.load_button = QPushButton("Load model")
        self.status = QLabel("no model loaded")
        self.status.setWordWrap(True)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Model"), 0, 0)
        layout.addWidget(self.model_combo, 0, 1)
        layout.addWidget(QLabel("Device"), 1, 0)
        layout.addWidget(self.device_combo, 1, 1)
        layout.addWidget(QLabel("Precision"), 2, 0)
        layout.addWidget(self.precision_combo, 2, 1)
        layout.addWidget(self.load_button, 3, 0, 1, 2)
        layout.addWidget(self.status, 4, 0, 1, 2)
        self.load_button.clicked.connect(self.load_selected)
        self.model_combo.activated.connect(self._on_model_activated)
        self.worker = None
        self._bar: progress | None = None

    def _on_model_activated(self, index: int) -> None:
        if self.model_combo.itemData(index) is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open a checkpoint", "", "Checkpoints (*.pt *.pth *.safetensors)"
            )
            if path:
                self.add_checkpoint(Path(path))

    def refresh_finetuned(self) -> None:
        """List the user's fine-tuned models (`model.user_models`) not listed yet, before
        'Local checkpoint…'; call it after a fine-tune to show the new model at once."""
        listed = {self.model_combo.itemData(i) for i in range(self.model_combo.count())}
        for model in user_models():
            path = str(Path(model.path))
            if path in listed:
                continue
            index = self.model_combo.count() - 1
            self.model_combo.insertItem(index, f"{model.name} (fine-tuned)", path)
            score = (
                "" if model.heldout_dice is None else f", held-out Dice {model.heldout_dice:.3f}"
            )
            self.model_combo.setItemData(
                index, f"{model.base} fine-tuned{score}: {path}", Qt.ItemDataRole.ToolTipRole
            )

    def add_checkpoint(self, path: Path) -> None:
        """Put a local checkpoint file in the model list and select it."""
        self.model_combo.insertItem(self.model_combo.count() - 1, path.name, str(path))
        self.model_combo.setCurrentIndex(self.model_combo.count() - 2)

    def selected_source(self) -> str | None:
        return self.model_combo.currentData()

    def selected_precision(self) -> str | None:
        """The precision to load with, as `load_model` takes it."""
        return PRECISIONS[self.precision_combo.currentText()]

    def load_selected(self) -> None:
        """Load the selected model on the selected device and precision in a worker thread."""
        source = self.selected_source()
        if source is None:
            show_error("Choose a model from the list or open a checkpoint file first.")
            return
        if self.worker is not None:
            show_info("A model is already loading.")
            return
        device = self.device_combo.currentText()
        self.load_button.setEnabled(False)
        self.status.setText(f"loading {Path(source).name} on {device}…")
        self._bar = progress(total=0, desc=f"Loading {Path(source).name}")
        worker = create_worker(
            load_model,
            source,
            device,
            precision=self.selected_precision(),
            progressbar=False,
            _ignore_errors=True,
        )
        self.worker = worker
        worker.returned.connect(self._on_loaded)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._done)
        worker.start()

    def _done(self) -> None:
        """The load ended (either way): the picker is usable again (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.worker = None
        self.load_button.setEnabled(True)

    def _on_loaded(self, loaded: LoadedModel) -> None:
        self._done()
        self.show_model(loaded)
        self.model_loaded.emit(loaded)

    def show_model(self, loaded: LoadedModel) -> None:
        adapter = " + temporal adapter" if loaded.temporal_adapter else ""
        self.status.setText(
            f"{loaded.name}{adapter} · {loaded.image_size} px · {loaded.device.type} "
            f"{loaded.precision_text} · {_profile_text(loaded.profile)}"
        )

    def _on_error(self, error: Exception) -> None:
        self._done()
        message = plain_message(error, "Loading the model failed")
        self.status.setText("no model loaded")
        show_error(message)
        self.load_failed.emit(message)


def _profile_text(profile: ModelProfile) -> str:
    """What the model's profile turns on by default, for the model line."""
    tricks = [
        name
        for name, on in (
            ("flip averaging", profile.flips),
            ("connected masks", profile.connected),
            ("carried masks", profile.carry_mask),
            ("follow motion on time axes", profile.follows_motion("T")),
            ("objects end once on depth axes", profile.ends_once("Z")),
        )
        if on
    ]
    return f"{profile.name} profile" + (
        f": {', '.join(tricks)}" if tricks else " (sam2's behaviour)"
    )
