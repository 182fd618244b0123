"""The per-image options of the annotator: memory mode, memory gate, zoom, connected masks,
follow motion, objects end once.

Each option is validated by `SessionOptions` (not changed while a run reads it; memory and zoom
restart the session) and kept on the image's `ImageState`; the session gets the same change
through `PropagationSession.set_options`. `OptionsPanel.show` puts a state's options, with the
model profile's defaults filled in, back on the controls without firing their signals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari.utils.notifications import show_warning

from ..engine.options import MemoryMode, SessionOptions
from ..model.profile import SAM2_PROFILE, ModelProfile
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
        actions.ends_once_check.toggled.connect(self.set_ends_once)

    def set_memory_mode(self, mode: str) -> None:
        """``"selective"`` (SAMed-2) or ``"sam2"`` for the current image (restarts its session)."""
        self._set_session_shaping("memory", mode, lambda opts: f"Memory is now {opts.memory}")

    def set_zoom(self, zoom: bool) -> None:
        """Give each object its own region for the current image (restarts its session)."""
        self._set_session_shaping(
            "zoom",
            bool(zoom),
            lambda opts: f"Zoom to each object is now {'on' if opts.zoom else 'off'}",
        )

    def set_connected(self, connected: bool) -> None:
        """Keep propagated masks connected to the frame before (live, from the next frame)."""
        self._set_live("connected", bool(connected), "switching connected masks")

    def set_motion(self, motion: bool) -> None:
        """Move carried masks with the objects' motion (live, from the next frame)."""
        self._set_live("motion", bool(motion), "switching follow motion")

    def set_ends_once(self, ends_once: bool) -> None:
        """Objects end once: no mask beyond a slice where an object's mask is empty (live, from
        the next frame)."""
        self._set_live("ends_once", bool(ends_once), "switching objects end once")

    def set_gate_threshold(self, value: float) -> None:
        """Confidence a frame needs to enter the memory (live for the current session)."""
        self._set_live("gate", float(value), "changing the memory gate")
        self._widget._refresh_confidence()

    def _set_session_shaping(self, name: str, value, said) -> None:
        """Change an option a session is built with: the image's session restarts (its labels
        stay)."""
        state = self._widget._require_state()
        if state is None:
            return
        try:
            options = state.options.replace(**{name: value})
        except ValueError as error:
            show_warning(str(error))
            self.show(state)
            return
        if options == state.options:
            return
        if self._refuse_while_running(state, f"changing the {name}"):
            return
        before = self.effective(state)
        state.options = options
        if state.session is not None and self.effective(state) != before:
            state.reset_session()
            self._widget.status.setText(
                f"{said(options)}: segment a frame again to start (labels are kept)."
            )
        self.show(state)
        self._widget._refresh_confidence()

    def _set_live(self, name: str, value, what: str) -> None:
        """Change an option a running session reads frame by frame (from the next frame)."""
        state = self._widget.state
        if state is None or self._refuse_while_running(state, what):
            return
        try:
            state.options = state.options.replace(**{name: value})
            if state.session is not None:
                state.session.set_options(**{name: value})
        except ValueError as error:
            show_warning(str(error))
        self.show(state)

    def _refuse_while_running(self, state: ImageState, what: str) -> bool:
        """True (and a warning; the controls show the state again) while a run is going on:
        the worker reads these settings frame by frame."""
        if self._widget.run is None:
            return False
        show_warning(f"Stop the running propagation before {what}.")
        self.show(state)
        return True

    def effective(self, state: ImageState) -> SessionOptions:
        """The options a new session of ``state`` gets with the loaded model."""
        return state.effective_options(self._profile())

    def _profile(self) -> ModelProfile:
        model = self._widget.model
        return model.profile if model is not None else SAM2_PROFILE

    def show(self, state: ImageState | None) -> None:
        """Put the options of ``state`` on the controls (without firing their signals): the
        user's choices, and for the rest what the loaded model's profile chose."""
        if state is None:
            return
        profile = self._profile()
        options = state.effective_options(profile)
        actions = self._actions
        controls = (
            actions.memory_combo,
            actions.gate_spin,
            actions.zoom_check,
            actions.connected_check,
            actions.motion_check,
            actions.ends_once_check,
        )
        for control in controls:
            control.blockSignals(True)
        actions.memory_combo.setCurrentIndex(
            max(actions.memory_combo.findData(options.memory.value), 0)
        )
        actions.gate_spin.setValue(options.gate)
        actions.gate_spin.setEnabled(options.memory is MemoryMode.SELECTIVE)
        actions.zoom_check.setChecked(options.zoom)
        actions.connected_check.setChecked(bool(options.connected))
        actions.motion_check.setChecked(bool(options.motion))
        actions.ends_once_check.setChecked(bool(options.ends_once))
        actions.motion_check.setToolTip(
            "Carried masks follow each object's motion."
            if profile.carry_mask
            else f"The loaded model ({profile.name} profile) does not carry masks between frames."
        )
        for control in controls:
            control.blockSignals(False)
