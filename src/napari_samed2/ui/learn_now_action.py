"""The annotator's "Learn from my corrections": fine-tune on this image's label-set entries in
a worker (napari stays usable), then swap the weights into the open model in place and
re-propagate this image's objects from their confirmed frames (`Repropagation`).

The session is kept (reset, then given its confirmed masks again): with ``train="decoder"``
the image encoder does not change, so its cached frame features stay valid. Other open images
keep their sessions; their next runs use the new weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal

from ..learn_now import (
    LEARN_NOW_SECONDS,
    LearnNowResult,
    confirmed_entries,
    import_training_modules,
    learn_from_corrections,
    swap_weights,
)
from .messages import plain_message
from .reprompt import Repropagation

if TYPE_CHECKING:
    from .widget import SAMed2Widget


class LearnNowAction(QObject):
    """Runs one learn-now at a time for ``widget``.

    Signals
    -------
    finished(object)
        The `LearnNowResult` once its weights are in use and the re-propagation has begun,
        or the exception that stopped it.
    """

    finished = Signal(object)

    def __init__(self, widget: SAMed2Widget) -> None:
        super().__init__(widget)
        self._widget = widget
        self.worker = None
        self.seconds = LEARN_NOW_SECONDS
        self.steps: int | None = None
        self.settings = None  # FinetuneSettings for scripts and tests; None: the defaults
        self.repropagation: Repropagation | None = None
        self._bar: progress | None = None
        self._job = None

    def start(self) -> bool:
        """Begin learning from the current image's entries; False (notified) if it cannot."""
        widget = self._widget
        panel = widget.labelset_panel
        if self.worker is not None:
            show_info("Already learning from your corrections.")
            return False
        if widget.model is None:
            show_error("Load a model first (Model ▸ Load model).")
            return False
        if panel.labelset is None:
            show_error("Choose a label set first: learning reads this image's entries there.")
            return False
        state = widget._require_state()
        if state is None:
            return False
        model = widget.model
        self._job = (state, model)
        import_training_modules()
        confirmed = (  # read here: the session changes while the worker trains
            confirmed_entries(state.session, panel.labelset, state.image.name)
            if state.session is not None
            else []
        )
        self.worker = create_worker(
            learn_from_corrections,
            model,
            panel.labelset,
            source=state.image.name,
            confirmed=confirmed,
            seconds=self.seconds,
            steps=self.steps,
            train="decoder",
            device=str(model.device),
            settings=self.settings,
            _ignore_errors=True,
        )
        self.worker.returned.connect(self._on_learned)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_worker_finished)
        budget = f"{self.steps} steps" if self.steps else f"{self.seconds:.0f} s"
        self._bar = progress(total=0, desc=f"SAMed-2: learning from your corrections ({budget})")
        widget.status.setText(f"Learning from your corrections ({budget}); keep working.")
        panel.learn_button.setEnabled(False)
        self.worker.start()
        return True

    def _on_learned(self, result: LearnNowResult) -> None:
        if self._widget.run is not None:
            # a run is using the network: swap once it has ended
            self._widget.run_finished.connect(self._apply_after_run)
            self._pending = result
            return
        self._apply(result)

    def _apply_after_run(self, summary=None) -> None:
        self._widget.run_finished.disconnect(self._apply_after_run)
        self._apply(self._pending)

    def _apply(self, result: LearnNowResult) -> None:
        widget = self._widget
        state, model = self._job
        if widget.model is not model:
            show_warning(
                f"The model changed while learning; the new weights are saved as "
                f"{result.path} (choose it in the model list to use them)."
            )
            widget.model_picker.refresh_finetuned()
            self.finished.emit(result)
            return
        try:
            swap_weights(model, result.finetune.model, result.path)
        except ValueError as error:
            self._on_error(error)
            return
        widget.model_picker.refresh_finetuned()
        widget.model_picker.show_model(model)
        confirmed = state.confirmed()
        if state.session is not None and widget.run_control.is_live(state):
            state.session.reset(bank=True)  # memories of the old weights; features stay
            state.results = {}
            state.history.clear()
            self.repropagation = Repropagation(widget, [(state, confirmed)])
            self.repropagation.start()
        frames = f" and {result.confirmed} confirmed frames" if result.confirmed else ""
        widget.status.setText(
            f"Learned from {result.entries} entries{frames} ({result.finetune.steps} steps): "
            f"now using {model.name}; re-propagating."
        )
        self.finished.emit(result)

    def _on_error(self, error: BaseException) -> None:
        show_error(plain_message(error, "Learning from your corrections failed"))
        self._widget.status.setText("Learning failed; see the notification.")
        self.finished.emit(error)

    def _on_worker_finished(self) -> None:
        self.worker = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._widget.labelset_panel.update_enabled()
