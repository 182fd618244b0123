"""The SAMed-2 annotator dock widget: prompt, segment, propagate, review and correct.

The widget is glue: prompts come from napari layers (`prompt_layers`), the engine does the
work in a thread worker (`runner`), masks go into the Labels layer through `LabelsWriter`
(one undo step per run), and the confidence strip shows the selected object's per-frame
confidence. No model code lives here. Its parts are plain objects it owns: `LayerBinding`
(which image, Labels and prompt layers), `RunControl` (engine runs, their end, undo sync) and
`OptionsPanel` (per-image options); the widget builds the panels, wires their signals and
keeps the methods scripts and shortcuts call.

One writer at a time: while a run works on a session, every control that would change that
session is disabled (and Ctrl-Z on its Labels layer waits). Undo reaches the model: each run,
accepted correction and object deletion is paired with its Labels undo step
(`model_history`), and undoing or redoing that step puts the session back in the matching
state.
"""

from __future__ import annotations

import napari
import numpy as np
from napari.layers import Image, Labels
from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, Signal
from qtpy.QtWidgets import QGroupBox, QVBoxLayout, QWidget

from ..model import LoadedModel
from .confidence_view import ConfidenceTrack
from .control_states import update_enabled
from .frames import FrameAxisError
from .image_state import ImageState
from .labelset_panel import LabelSetPanel
from .layer_binding import LayerBinding
from .learn_now_action import LearnNowAction
from .model_picker import ModelPicker
from .options_panel import OptionsPanel
from .panels import ActionsPanel, ImagePanel, ObjectsPanel, ReviewPanel, scrolling_column
from .prompt_layers import NEGATIVE, POSITIVE, remove_object_prompts
from .run_control import RunControl
from .runner import EngineRun, WindowCloseWatcher
from .shortcuts import bind_shortcuts, unbind_shortcuts


class SAMed2Widget(QWidget):
    """Annotator for SAMed-2 / SAM2: click, propagate through Z or T, correct.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer the widget is docked in.

    Signals
    -------
    accepted(list of AcceptedFrame)
        Frames whose masks the user corrected and accepted (hook for a label set).
    frame_done(int)
        Each frame a run has written (or skipped as confirmed), in order.
    run_finished(dict)
        After each engine run: ``{"kind", "frames", "stopped", "error"}``.
    """

    accepted = Signal(object)
    frame_done = Signal(int)
    run_finished = Signal(object)

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.model: LoadedModel | None = None
        self.states: dict[int, ImageState] = {}
        self.state: ImageState | None = None
        self._shortcuts: dict = {}
        self._viewer_connected = False
        self._docked = False
        self._closing_filter: WindowCloseWatcher | None = None
        self.run_control = RunControl(self)
        self.layer_binding = LayerBinding(self)
        self.demo_script = None  # set by ui.demo.show_demo, kept alive with the widget
        self._build()
        self.learning = LearnNowAction(self)
        self.options = OptionsPanel(self, self.actions_panel)
        self._connect_viewer()
        self.layer_binding.refresh_image_choices()
        self._update_enabled()

    # layout -----------------------------------------------------------------------------------

    def _build(self) -> None:
        self.model_picker = ModelPicker()
        self.model_picker.model_loaded.connect(self.set_model)
        model_box = QGroupBox("Model")
        QVBoxLayout(model_box).addWidget(self.model_picker)
        self.image_panel = ImagePanel()
        self.objects_panel = ObjectsPanel()
        self.actions_panel = ActionsPanel()
        self.review_panel = ReviewPanel()
        self.labelset_panel = LabelSetPanel(self)
        # the controls tests and scripts drive, by their plain names
        self.image_combo = self.image_panel.image_combo
        self.axis_combo = self.image_panel.axis_combo
        self.labels_combo = self.image_panel.labels_combo
        self.object_list = self.objects_panel.object_list
        self.object_list.colour_of = self._colour_of
        actions = self.actions_panel
        self.segment_button = actions.segment_button
        self.forward_button = actions.forward_button
        self.backward_button = actions.backward_button
        self.both_button = actions.both_button
        self.stop_button = actions.stop_button
        self.accept_button = actions.accept_button
        self.direction_combo = actions.direction_combo
        self.memory_combo = actions.memory_combo
        self.gate_spin = actions.gate_spin
        self.zoom_check = actions.zoom_check
        self.connected_check = actions.connected_check
        self.motion_check = actions.motion_check
        self.ends_once_check = actions.ends_once_check
        self.confidence = self.review_panel.confidence
        self.weak_button = self.review_panel.weak_button
        self.status = self.review_panel.status

        boxes = (model_box, self.image_panel, self.objects_panel, actions, self.review_panel)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scrolling_column([*boxes, self.labelset_panel]))
        self.setMinimumWidth(400)  # the scroll area only scrolls vertically

        self.image_combo.currentIndexChanged.connect(self.layer_binding.on_image_chosen)
        self.axis_combo.activated.connect(self.layer_binding.on_axis_chosen)
        self.labels_combo.activated.connect(self.layer_binding.on_labels_chosen)
        self.object_list.add_button.clicked.connect(self.add_object)
        self.object_list.delete_button.clicked.connect(self.delete_selected_object)
        self.object_list.selected.connect(self.layer_binding.on_object_selected)
        self.object_list.renamed.connect(lambda *_: self._refresh_confidence())
        self.objects_panel.positive_button.clicked.connect(lambda: self.start_points(POSITIVE))
        self.objects_panel.negative_button.clicked.connect(lambda: self.start_points(NEGATIVE))
        self.objects_panel.box_button.clicked.connect(self.start_box)
        self.segment_button.clicked.connect(self.run_control.segment_frame)
        self.forward_button.clicked.connect(self.propagate_forward)
        self.backward_button.clicked.connect(self.propagate_backward)
        self.both_button.clicked.connect(self.propagate_both)
        self.stop_button.clicked.connect(self.run_control.stop)
        self.accept_button.clicked.connect(self.run_control.accept_correction)
        self.weak_button.clicked.connect(self.next_weak_frame)
        self.confidence.frame_clicked.connect(self.go_to_frame)
        self.accepted.connect(self.labelset_panel.on_accepted)  # autosave
        self.labelset_panel.learn_button.clicked.connect(self.learn_now)
        self.labelset_panel.finetune_button.clicked.connect(self.open_finetuning)

    def _connect_viewer(self) -> None:
        if self._viewer_connected:
            return
        self._viewer_connected = True
        layers = self.viewer.layers
        layers.events.inserted.connect(self.layer_binding.on_layers_changed)
        layers.events.removed.connect(self.layer_binding.on_layer_removed)
        self.viewer.dims.events.current_step.connect(self._on_step_changed)
        self._shortcuts = bind_shortcuts(self.viewer, self)
        for state in self.states.values():
            if state.points is not None:
                self.layer_binding.bind_points_keys(state.points)

    def release_viewer(self) -> None:
        """The widget was closed or taken out of its dock: unbind its shortcuts from the
        viewer and its layers (only where they are still ours), stop listening to the viewer,
        and ask a running job to stop (without waiting for it). Docking the widget again
        binds them again."""
        if not self._viewer_connected:
            return
        self._viewer_connected = False
        unbind_shortcuts(self.viewer, self._shortcuts)
        for layer, handlers in self.layer_binding.layer_shortcuts:
            unbind_shortcuts(layer, handlers)
        self._shortcuts, self.layer_binding.layer_shortcuts = {}, []
        layers = self.viewer.layers
        layers.events.inserted.disconnect(self.layer_binding.on_layers_changed)
        layers.events.removed.disconnect(self.layer_binding.on_layer_removed)
        self.viewer.dims.events.current_step.disconnect(self._on_step_changed)
        if self.run is not None:
            self.run_control.stop()

    # model ------------------------------------------------------------------------------------

    def set_model(self, loaded: LoadedModel) -> None:
        """Use ``loaded`` for every image from now on (sessions restart; labels stay)."""
        if self.run is not None:
            show_warning("Stop the running propagation before changing the model.")
            return
        self.model = loaded
        self.model_picker.show_model(loaded)
        for state in self.states.values():
            state.reset_session()
        self.options.show(self.state)  # the new model's profile may choose other defaults
        self._refresh_confidence()
        self._update_enabled()

    # label set, learning --------------------------------------------------------------------------

    def set_labelset(self, labelset):
        """Add frames to ``labelset`` (a `LabelSet`, its folder, or an empty or new folder for
        a new set); returns the set, or None after a notified error."""
        return self.labelset_panel.set_labelset(labelset)

    def learn_now(self) -> bool:
        """Fine-tune on this image's label-set entries, use the weights, re-propagate."""
        return self.learning.start()

    def open_finetuning(self):
        """Dock the fine-tuning panel, linked to this annotator; returns it."""
        from .finetune_panel import open_finetuning

        return open_finetuning(self)

    # objects and prompts ----------------------------------------------------------------------

    def add_object(self, name: str | None = None) -> int | None:
        """Add an object with the next free label id and select it; returns the id."""
        state = self._require_state()
        if state is None:
            return None
        self.layer_binding.ensure_layers(state)
        state.objects = self.object_list.objects()
        obj_id = state.next_object_id()
        dtype = np.asarray(state.labels.data[:0]).dtype if state.labels is not None else None
        if dtype is not None and dtype.kind in "iu" and obj_id > np.iinfo(dtype).max:
            show_error(
                f"Labels layer {state.labels.name!r} holds {dtype} ids up to "
                f"{np.iinfo(dtype).max}; object id {obj_id} does not fit. Use a Labels layer "
                "of a wider type (int32) for more objects."
            )
            return None
        self.object_list.add(obj_id, name if isinstance(name, str) else None)
        return obj_id

    def delete_selected_object(self) -> None:
        state = self._require_state()
        obj_id = self.object_list.current_id()
        if state is None or obj_id is None:
            show_info("Select an object to delete.")
            return
        self.delete_object(obj_id)

    def delete_object(self, obj_id: int) -> None:
        """Remove object ``obj_id``: its labels (one undo step), prompts and engine state."""
        state = self._require_state()
        if state is None:
            return
        if self.run is not None:
            show_warning("Stop the running propagation before deleting an object.")
            return
        self.run_control.sync_model(state)
        session = state.session if obj_id in state.object_ids() else None
        before = session.snapshot() if session is not None else None
        if session is not None:
            session.remove_object(obj_id)
        writer = self.layer_binding.writer(state) if state.labels is not None else None
        if writer is not None:
            with self.run_control.recording_step():
                writer.erase_object(obj_id)
                if session is not None:
                    state.history.record(
                        "object deletion", session, state.labels, before, session.snapshot()
                    )
        remove_object_prompts(state.points, state.boxes, obj_id)
        state.results = {frame: r.without(obj_id) for frame, r in state.results.items()}
        state.pending.discard_object(obj_id)
        self.object_list.remove(obj_id)
        state.objects = self.object_list.objects()
        self._refresh_confidence()

    # engine actions ---------------------------------------------------------------------------

    def propagate_forward(self) -> None:
        self.propagate("forward")

    def propagate_backward(self) -> None:
        self.propagate("backward")

    def propagate_both(self) -> None:
        self.propagate("both")

    def next_weak_frame(self) -> None:
        """Jump to the next frame (after the current one, wrapping) under the threshold."""
        track = self._track()
        weak = track.weak_frames()
        if not weak:
            show_info("No frame of the selected object is under the confidence threshold.")
            return
        frame = self.current_frame() if self.state and self.state.geometry else -1
        later = [f for f in weak if f > frame]
        self.go_to_frame(later[0] if later else weak[0])

    # frames, confidence -----------------------------------------------------------------------

    def current_frame(self) -> int:
        state = self.state
        if state is None:
            return 0
        geometry = state.geometry or self.layer_binding.geometry(state)
        position = state.image.world_to_data(self.viewer.dims.point)
        return geometry.frame_at(position)

    def go_to_frame(self, frame: int) -> None:
        """Show ``frame`` of the current image in the viewer."""
        state = self.state
        if state is None or state.frame_axis is None:
            return
        image = state.image
        position = list(image.world_to_data(self.viewer.dims.point))
        position[state.frame_axis] = frame
        world = image.data_to_world(position)
        offset = self.viewer.dims.ndim - len(world)
        self.viewer.dims.set_point(offset + state.frame_axis, world[state.frame_axis])

    def _on_step_changed(self, event=None) -> None:
        if self.state is not None and self.state.frame_axis is not None:
            try:
                self.confidence.set_current_frame(self.current_frame())
            except (FrameAxisError, IndexError):
                pass

    def _track(self) -> ConfidenceTrack:
        obj_id = self.object_list.current_id()
        if self.state is None or obj_id is None:
            return ConfidenceTrack()
        return self.state.track(obj_id)

    def _refresh_confidence(self) -> None:
        obj_id = self.object_list.current_id()
        name = self.object_list.name_of(obj_id) if obj_id is not None else "no object"
        self.confidence.set_track(self._track(), title=f"confidence · {name}")
        self._on_step_changed()

    # the widget's API (tests, scripts, shortcuts): run_control, layer_binding, options --------

    @property
    def run(self) -> EngineRun | None:
        """The engine run going on, or None."""
        return self.run_control.run

    @property
    def _run_progress(self) -> progress | None:
        return self.run_control.progress_bar

    def segment_frame(self) -> None:
        """Segment the selected object on the current frame from its prompts (or paint)."""
        self.run_control.segment_frame()

    def propagate(self, direction: str = "both") -> None:
        """Propagate every object from the current frame (or the first prompted one)."""
        self.run_control.propagate(direction)

    def accept_correction(self) -> None:
        """Hand painted frames to the engine and re-propagate up to the next confirmed frame."""
        self.run_control.accept_correction()

    def stop(self) -> None:
        """Stop the running propagation after the frame being computed."""
        self.run_control.stop()

    def shutdown(self, timeout: float = 10.0) -> bool:
        """The viewer is closing: stop any run and close every session (`RunControl.shutdown`)."""
        return self.run_control.shutdown(timeout)

    def _start_run(self, kind: str, state: ImageState, steps: list, **options) -> None:
        self.run_control.start(kind, state, steps, **options)

    def start_points(self, sign: str = POSITIVE) -> None:
        """Select the Points layer in add mode; new clicks get ``sign``."""
        self.layer_binding.start_points(sign)

    def start_box(self) -> None:
        """Select the Shapes layer in rectangle mode."""
        self.layer_binding.start_box()

    def select_image(self, layer: Image) -> None:
        """Work on image layer ``layer`` (as choosing it in the combo box does)."""
        self.layer_binding.select_image(layer)

    def use_labels_layer(self, layer: Labels) -> None:
        """Write into the existing Labels layer ``layer``; its label ids become objects."""
        self.layer_binding.use_labels_layer(layer)

    def set_frame_axis(self, axis: int | None) -> None:
        """Propagate along layer axis ``axis`` of the current image (restarts its session)."""
        self.layer_binding.set_frame_axis(axis)

    def _on_axis_chosen(self, index: int) -> None:
        self.layer_binding.on_axis_chosen(index)

    def set_memory_mode(self, mode: str) -> None:
        """``"selective"`` (SAMed-2) or ``"sam2"`` for the current image (restarts its session)."""
        self.options.set_memory_mode(mode)

    def set_gate_threshold(self, value: float) -> None:
        """Confidence a frame needs to enter the memory (live for the current session)."""
        self.options.set_gate_threshold(value)

    def set_zoom(self, zoom: bool) -> None:
        """Give each object its own region for the current image (restarts its session)."""
        self.options.set_zoom(zoom)

    def set_connected(self, connected: bool) -> None:
        """Keep propagated masks connected to the frame before (live, from the next frame)."""
        self.options.set_connected(connected)

    def set_motion(self, motion: bool) -> None:
        """Move carried masks with the objects' motion (live, from the next frame)."""
        self.options.set_motion(motion)

    def set_ends_once(self, ends_once: bool) -> None:
        """Objects end once along the frame axis (live, from the next frame)."""
        self.options.set_ends_once(ends_once)

    # plumbing ---------------------------------------------------------------------------------

    def _require_state(self) -> ImageState | None:
        if self.state is None:
            show_error("Open or choose an image layer first.")
        return self.state

    def _colour_of(self, obj_id: int) -> np.ndarray:
        state = self.state
        if state is not None and state.labels is not None:
            return np.asarray(state.labels.get_color(obj_id))
        return np.array([0.6, 0.6, 0.6, 1.0])

    def _update_enabled(self) -> None:
        update_enabled(self)

    # Qt: stop the worker when the main window closes; release the viewer when we close --------

    def event(self, event) -> bool:  # Qt override
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
                self._connect_viewer()  # docked again after being taken out
            elif self._docked:
                self.release_viewer()  # napari's dock "x" takes the widget out of the dock
        return super().event(event)

    def closeEvent(self, event) -> None:  # Qt override
        self.release_viewer()
        super().closeEvent(event)

    def showEvent(self, event) -> None:  # Qt override
        super().showEvent(event)
        window = self.window()
        if window is not self:
            self._watch_closing(window)

    def _watch_closing(self, window: QWidget | None) -> None:
        if self._closing_filter is None and isinstance(window, QWidget) and window is not self:
            self._closing_filter = WindowCloseWatcher(self.run_control.shutdown, parent=self)
            window.installEventFilter(self._closing_filter)
