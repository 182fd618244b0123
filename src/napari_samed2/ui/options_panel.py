"""The per-image options of the annotator: memory mode, memory gate, zoom, connected masks and
follow motion.

Each option is validated (not while a run reads it; memory and zoom restart the session) and
stored on the image's `ImageState` in one place, and `OptionsPanel.show` puts a state's
options back on the controls without firing their signals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari.utils.notifications import show_warning

from .image_state import ImageState

if TYPE_CHECKING:
    from .panels import ActionsPanel
    from .widget import SAMed2Widget


class OptionsPanel:
    """The option setters of ``widget``, shown on the controls of ``actions``.

    Parameters
    ----------
    widget : SAMed2Widget
        The annotator whose current image the options belong to.
    actions : ActionsPanel
        The panel holding the option controls.
    """

    def __init__(self, widget: SAMed2Widget, actions: ActionsPanel) -> None:
        self._widget = widget
        self._actions = actions
        actions.memory_combo.activated.connect(
            lambda index: self.set_memory_mode(actions.memory_combo.itemData(index))
        )
        actions.gate_spin.valueChanged.connect(self.set_gate_threshold)
        actions.zoom_check.toggled.connect(self.set_zoom)
        actions.connected_check.toggled.connect(self.set_connected)
        actions.motion_check.toggled.connect(self.set_motion)

    def set_memory_mode(self, mode: str) -> None:
        """``"selective"`` (SAMed-2) or ``"sam2"`` for the current image (restarts its session)."""
        state = self._widget._require_state()
        if state is None or mode == state.memory:
            return
        if self._widget.run is not None:
            show_warning("Stop the running propagation before changing the memory.")
            self.show(state)
            return
        state.memory = mode
        if state.session is not None:
            state.reset_session()
            self._widget.status.setText(
                f"Memory is now {mode}: segment a frame again to start (labels are kept)."
            )
        self.show(state)
        self._widget._refresh_confidence()

    def set_zoom(self, zoom: bool) -> None:
        """Give each object its own region for the current image (restarts its session)."""
        state = self._widget._require_state()
        if state is None or bool(zoom) == state.zoom:
            return
        if self._widget.run is not None:
            show_warning("Stop the running propagation before changing the zoom.")
            self.show(state)
            return
        state.zoom = bool(zoom)
        if state.session is not None:
            state.reset_session()
            self._widget.status.setText(
                f"Zoom to each object is now {'on' if zoom else 'off'}: segment a frame again "
                "to start (labels are kept)."
            )
        self.show(state)
        self._widget._refresh_confidence()

    def set_connected(self, connected: bool) -> None:
        """Keep propagated masks connected to the frame before (live, from the next frame)."""
        state = self._widget.state
        if state is None or self._refuse_while_running(state, "switching connected masks"):
            return
        state.connected = bool(connected)
        if state.session is not None:
            state.session.connected = state.connected

    def set_motion(self, motion: bool) -> None:
        """Move carried masks with the objects' motion (live, from the next frame)."""
        state = self._widget.state
        if state is None or self._refuse_while_running(state, "switching follow motion"):
            return
        state.motion = bool(motion)
        if state.session is not None:
            state.session.motion = state.motion

    def set_gate_threshold(self, value: float) -> None:
        """Confidence a frame needs to enter the memory (live for the current session)."""
        state = self._widget.state
        if state is None or self._refuse_while_running(state, "changing the memory gate"):
            return
        state.gate_threshold = float(value)
        if state.session is not None:
            state.session.settings.memory.gate_threshold = float(value)
        self.show(state)
        self._widget._refresh_confidence()

    def _refuse_while_running(self, state: ImageState, what: str) -> bool:
        """True (and a warning; the controls show the state again) while a run is going on:
        the worker reads these settings frame by frame."""
        if self._widget.run is None:
            return False
        show_warning(f"Stop the running propagation before {what}.")
        self.show(state)
        return True

    def show(self, state: ImageState | None) -> None:
        """Put the options of ``state`` on the controls (without firing their signals)."""
        if state is None:
            return
        self._actions.memory_combo.blockSignals(True)
        self._actions.gate_spin.blockSignals(True)
        index = self._actions.memory_combo.findData(state.memory)
        self._actions.memory_combo.setCurrentIndex(max(index, 0))
        self._actions.gate_spin.setValue(state.gate_threshold)
        self._actions.gate_spin.setEnabled(state.memory == "selective")
        self._actions.zoom_check.blockSignals(True)
        self._actions.zoom_check.setChecked(state.zoom)
        self._actions.zoom_check.blockSignals(False)
        self._actions.connected_check.blockSignals(True)
        self._actions.connected_check.setChecked(state.connected)
        self._actions.connected_check.blockSignals(False)
        self._actions.motion_check.blockSignals(True)
        self._actions.motion_check.setChecked(state.follows_motion())
        self._actions.motion_check.blockSignals(False)
        self._actions.memory_combo.blockSignals(False)
        self._actions.gate_spin.blockSignals(False)
