"""The SAMed-2 annotator dock widget: prompt, segment, propagate, review and correct.

The widget is glue: prompts come from napari layers (`prompt_layers`), the engine does the
work in a thread worker (`runner`), masks go into the Labels layer through `LabelsWriter`
(one undo step per run), and the confidence strip shows the selected object's per-frame
confidence. No model code lives here.

One writer at a time: while a run works on a session, every control that would change that
session is disabled (and Ctrl-Z on its Labels layer waits). Undo reaches the model: each run,
accepted correction and object deletion is paired with its Labels undo step
(`model_history`), and undoing or redoing that step puts the session back in the matching
state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import napari
import numpy as np
from napari.layers import Image, Labels
from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, Qt, Signal
from qtpy.QtWidgets import QGroupBox, QScrollArea, QVBoxLayout, QWidget

from ..engine import MemorySettings, PropagationSession, SessionSettings
from ..labelset import AcceptedFrame, correction_segments, frame_write, painted_frames
from ..model import LoadedModel
from .confidence_view import ConfidenceTrack
from .frames import FrameAxisError, FrameGeometry, infer_frame_axis
from .image_state import ImageState
from .labels_writer import LabelsWriter
from .messages import plain_message
from .model_picker import ModelPicker
from .panels import ActionsPanel, ImagePanel, ObjectsPanel, ReviewPanel, label_shape
from .prompt_layers import (
    NEGATIVE,
    POSITIVE,
    make_boxes_layer,
    make_points_layer,
    prompts_for,
    remove_object_prompts,
    set_prompt_object,
    set_sign,
    toggle_sign,
)
from .runner import Call, EngineRun, Segment, WindowCloseWatcher
from .shortcuts import POINTS_SHORTCUTS, RUN_UNDO_GUARD, bind_shortcuts, unbind_shortcuts


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
        self.run: EngineRun | None = None
        self._run_kind = ""
        self._run_progress: progress | None = None
        self._run_protected: dict[int, set[int]] = {}
        self._run_state: ImageState | None = None
        self._run_before = None  # the session's snapshot when the run began (undo)
        self._run_accepted: tuple[tuple[int, int], ...] = ()
        self._shortcuts: dict = {}
        self._layer_shortcuts: list[tuple[object, dict]] = []
        self._viewer_connected = False
        self._docked = False
        self._undo_guard: tuple[object, dict] | None = None  # Ctrl-Z held during a run
        self._recording = False  # between an action's label writes and its history record
        self._closing_filter: WindowCloseWatcher | None = None
        self._closed = False
        self._connected_labels: set[int] = set()
        self.demo_script = None  # set by ui.demo.show_demo, kept alive with the widget
        self._build()
        self._connect_viewer()
        self._refresh_image_choices()
        self._update_enabled()

    # =========================================================================================
    # layout
    # =========================================================================================

    def _build(self) -> None:
        self.model_picker = ModelPicker()
        self.model_picker.model_loaded.connect(self.set_model)
        model_box = QGroupBox("Model")
        QVBoxLayout(model_box).addWidget(self.model_picker)
        self.image_panel = ImagePanel()
        self.objects_panel = ObjectsPanel()
        self.actions_panel = ActionsPanel()
        self.review_panel = ReviewPanel()
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
        self.confidence = self.review_panel.confidence
        self.weak_button = self.review_panel.weak_button
        self.status = self.review_panel.status

        content = QWidget()
        column = QVBoxLayout(content)
        for box in (model_box, self.image_panel, self.objects_panel, actions, self.review_panel):
            column.addWidget(box)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.setMinimumWidth(400)  # the scroll area only scrolls vertically

        self.image_combo.currentIndexChanged.connect(self._on_image_chosen)
        self.axis_combo.activated.connect(self._on_axis_chosen)
        self.labels_combo.activated.connect(self._on_labels_chosen)
        self.object_list.add_button.clicked.connect(self.add_object)
        self.object_list.delete_button.clicked.connect(self.delete_selected_object)
        self.object_list.selected.connect(self._on_object_selected)
        self.object_list.renamed.connect(lambda *_: self._refresh_confidence())
        self.objects_panel.positive_button.clicked.connect(lambda: self.start_points(POSITIVE))
        self.objects_panel.negative_button.clicked.connect(lambda: self.start_points(NEGATIVE))
        self.objects_panel.box_button.clicked.connect(self.start_box)
        self.segment_button.clicked.connect(self.segment_frame)
        self.forward_button.clicked.connect(self.propagate_forward)
        self.backward_button.clicked.connect(self.propagate_backward)
        self.both_button.clicked.connect(self.propagate_both)
        self.stop_button.clicked.connect(self.stop)
        self.accept_button.clicked.connect(self.accept_correction)
        self.weak_button.clicked.connect(self.next_weak_frame)
        self.confidence.frame_clicked.connect(self.go_to_frame)
        self.memory_combo.activated.connect(
            lambda index: self.set_memory_mode(self.memory_combo.itemData(index))
        )
        self.gate_spin.valueChanged.connect(self.set_gate_threshold)
        self.zoom_check.toggled.connect(self.set_zoom)
        self.connected_check.toggled.connect(self.set_connected)
        self.motion_check.toggled.connect(self.set_motion)

    def _connect_viewer(self) -> None:
        if self._viewer_connected:
            return
        self._viewer_connected = True
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layer_removed)
        self.viewer.dims.events.current_step.connect(self._on_step_changed)
        self._shortcuts = bind_shortcuts(self.viewer, self)
        for state in self.states.values():
            if state.points is not None:
                self._bind_points_keys(state.points)

    def release_viewer(self) -> None:
        """The widget was closed or taken out of its dock: unbind its shortcuts from the
        viewer and its layers (only where they are still ours), stop listening to the viewer,
        and ask a running job to stop (without waiting for it). Docking the widget again
        binds them again."""
        if not self._viewer_connected:
            return
        self._viewer_connected = False
        unbind_shortcuts(self.viewer, self._shortcuts)
        for layer, handlers in self._layer_shortcuts:
            unbind_shortcuts(layer, handlers)
        self._shortcuts, self._layer_shortcuts = {}, []
        layers = self.viewer.layers
        layers.events.inserted.disconnect(self._on_layers_changed)
        layers.events.removed.disconnect(self._on_layer_removed)
        self.viewer.dims.events.current_step.disconnect(self._on_step_changed)
        if self.run is not None:
            self.stop()

    def _bind_points_keys(self, points) -> None:
        self._layer_shortcuts.append((points, bind_shortcuts(points, self, POINTS_SHORTCUTS)))

    # =========================================================================================
    # model
    # =========================================================================================

    def set_model(self, loaded: LoadedModel) -> None:
        """Use ``loaded`` for every image from now on (sessions restart; labels stay)."""
        if self.run is not None:
            show_warning("Stop the running propagation before changing the model.")
            return
        self.model = loaded
        self.model_picker.show_model(loaded)
        for state in self.states.values():
            state.reset_session()
        self._refresh_confidence()
        self._update_enabled()

    def set_memory_mode(self, mode: str) -> None:
        """``"selective"`` (SAMed-2) or ``"sam2"`` for the current image (restarts its session)."""
        state = self._require_state()
        if state is None or mode == state.memory:
            return
        if self.run is not None:
            show_warning("Stop the running propagation before changing the memory.")
            self._show_memory(state)
            return
        state.memory = mode
        if state.session is not None:
            state.reset_session()
            self.status.setText(
                f"Memory is now {mode}: segment a frame again to start (labels are kept)."
            )
        self._show_memory(state)
        self._refresh_confidence()

    def set_zoom(self, zoom: bool) -> None:
        """Give each object its own region for the current image (restarts its session)."""
        state = self._require_state()
        if state is None or bool(zoom) == state.zoom:
            return
        if self.run is not None:
            show_warning("Stop the running propagation before changing the zoom.")
            self._show_memory(state)
            return
        state.zoom = bool(zoom)
        if state.session is not None:
            state.reset_session()
            self.status.setText(
                f"Zoom to each object is now {'on' if zoom else 'off'}: segment a frame again "
                "to start (labels are kept)."
            )
        self._show_memory(state)
        self._refresh_confidence()

    def set_connected(self, connected: bool) -> None:
        """Keep propagated masks connected to the frame before (live, from the next frame)."""
        state = self.state
        if state is None or self._refuse_while_running(state, "switching connected masks"):
            return
        state.connected = bool(connected)
        if state.session is not None:
            state.session.connected = state.connected

    def set_motion(self, motion: bool) -> None:
        """Move carried masks with the objects' motion (live, from the next frame)."""
        state = self.state
        if state is None or self._refuse_while_running(state, "switching follow motion"):
            return
        state.motion = bool(motion)
        if state.session is not None:
            state.session.motion = state.motion

    def set_gate_threshold(self, value: float) -> None:
        """Confidence a frame needs to enter the memory (live for the current session)."""
        state = self.state
        if state is None or self._refuse_while_running(state, "changing the memory gate"):
            return
        state.gate_threshold = float(value)
        if state.session is not None:
            state.session.settings.memory.gate_threshold = float(value)
        self._show_memory(state)
        self._refresh_confidence()

    def _refuse_while_running(self, state: ImageState, what: str) -> bool:
        """True (and a warning; the controls show the state again) while a run is going on:
        the worker reads these settings frame by frame."""
        if self.run is None:
            return False
        show_warning(f"Stop the running propagation before {what}.")
        self._show_memory(state)
        return True

    def _show_memory(self, state: ImageState | None) -> None:
        if state is None:
            return
        self.memory_combo.blockSignals(True)
        self.gate_spin.blockSignals(True)
        index = self.memory_combo.findData(state.memory)
        self.memory_combo.setCurrentIndex(max(index, 0))
        self.gate_spin.setValue(state.gate_threshold)
        self.gate_spin.setEnabled(state.memory == "selective")
        self.zoom_check.blockSignals(True)
        self.zoom_check.setChecked(state.zoom)
        self.zoom_check.blockSignals(False)
        self.connected_check.blockSignals(True)
        self.connected_check.setChecked(state.connected)
        self.connected_check.blockSignals(False)
        self.motion_check.blockSignals(True)
        self.motion_check.setChecked(state.follows_motion())
        self.motion_check.blockSignals(False)
        self.memory_combo.blockSignals(False)
        self.gate_spin.blockSignals(False)

    # =========================================================================================
    # image, axis, labels
    # =========================================================================================

    def _image_layers(self) -> list[Image]:
        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def _refresh_image_choices(self) -> None:
        current = self.state.image if self.state else None
        images = self._image_layers()
        self.image_panel.show_images(images, current if current in images else None)
        if images and current not in images:
            self.image_combo.setCurrentIndex(0)
            self._on_image_chosen(0)
        elif not images:
            self._show_state(None)

    def _on_layers_changed(self, event=None) -> None:
        self._refresh_image_choices()
        self._refresh_labels_choices()

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        for key, state in list(self.states.items()):
            if state.image is layer:
                if self.run is not None and state is self._run_state:
                    # never wait here (the GUI would freeze for the frame being computed):
                    # the worker ends after its frame, and _on_run_finished drops the state
                    self.run.stop()
                else:
                    state.close_session()
                del self.states[key]
                if state is self.state:
                    self.state = None
            for name in ("labels", "points", "boxes"):
                if getattr(state, name) is layer:
                    if name == "labels" and self.run is not None and state is self.state:
                        self.stop()
                    setattr(state, name, None)
                    if name == "labels":
                        state.writer = None
        self._on_layers_changed()

    def select_image(self, layer: Image) -> None:
        """Work on image layer ``layer`` (as choosing it in the combo box does)."""
        for index in range(self.image_combo.count()):
            if self.image_combo.itemData(index) == id(layer):
                self.image_combo.setCurrentIndex(index)
                return
        raise ValueError(f"{layer.name!r} is not an image layer of this viewer")

    def _on_image_chosen(self, index: int) -> None:
        if index < 0:
            return
        layer_id = self.image_combo.itemData(index)
        layer = next((lyr for lyr in self._image_layers() if id(lyr) == layer_id), None)
        if layer is None:
            return
        if self.run is not None and self.state is not None and self.state.image is not layer:
            show_warning("Stop the running propagation before switching images.")
            self.select_image(self.state.image)
            return
        self._save_objects()
        state = self.states.get(id(layer))
        if state is None:
            state = ImageState(image=layer)
            inference = infer_frame_axis(layer.data.shape, layer.rgb, layer.axis_labels)
            state.frame_axis = inference.default
            self.states[id(layer)] = state
            if inference.needs_choice:
                show_info(
                    f"{layer.name!r} has {len(inference.candidates) + 2} dimensions: choose the "
                    "axis to propagate along in 'Frame axis'."
                )
        self._show_state(state)

    def _save_objects(self) -> None:
        if self.state is not None:
            self.state.objects = self.object_list.objects()
            self.state.selected = self.object_list.current_id()

    def _show_state(self, state: ImageState | None) -> None:
        self.state = state
        self.object_list.clear()
        if state is not None:
            for obj in state.objects:
                self.object_list.add(obj.obj_id, obj.name, select=False)
            if state.selected is not None:
                self.object_list.select(state.selected)
        self._refresh_axis_choices()
        self._refresh_labels_choices()
        self._show_memory(state)
        self._refresh_confidence()
        self._update_enabled()

    def _refresh_axis_choices(self) -> None:
        state = self.state
        self.image_panel.show_axes(
            state.image if state else None, state.frame_axis if state else None
        )

    def _on_axis_chosen(self, index: int) -> None:
        self.set_frame_axis(self.axis_combo.itemData(index))

    def set_frame_axis(self, axis: int | None) -> None:
        """Propagate along layer axis ``axis`` of the current image (restarts its session)."""
        state = self._require_state()
        if state is None or axis == state.frame_axis:
            return
        if self.run is not None:
            show_warning("Stop the running propagation before changing the axis.")
            self._refresh_axis_choices()
            return
        state.frame_axis = axis
        state.reset_session()
        self._refresh_axis_choices()
        self._show_memory(state)  # "Follow motion" follows a time axis
        self._refresh_confidence()

    def _labels_layers(self) -> list[Labels]:
        return [layer for layer in self.viewer.layers if isinstance(layer, Labels)]

    def _refresh_labels_choices(self) -> None:
        state = self.state
        self.image_panel.show_labels(
            self._labels_layers(), state.image if state else None, state.labels if state else None
        )

    def _on_labels_chosen(self, index: int) -> None:
        layer_id = self.labels_combo.itemData(index)
        layer = next((lyr for lyr in self._labels_layers() if id(lyr) == layer_id), None)
        if layer is not None:
            self.use_labels_layer(layer)

    def use_labels_layer(self, layer: Labels) -> None:
        """Write into the existing Labels layer ``layer``; its label ids become objects."""
        state = self._require_state()
        if state is None:
            return
        if self.run is not None:
            show_warning("Stop the running propagation before changing the Labels layer.")
            return
        shape = label_shape(state.image)
        if tuple(layer.data.shape) != shape:
            show_error(
                f"Labels layer {layer.name!r} has shape {tuple(layer.data.shape)}, but the image "
                f"needs {shape}."
            )
            return
        state.labels = layer
        state.writer = None
        self._connect_labels(layer)
        for value in np.unique(np.asarray(layer.data)):
            if value > 0 and int(value) not in self.object_list.ids():
                self.object_list.add(int(value), select=False)
        self._refresh_labels_choices()

    def _connect_labels(self, layer: Labels) -> None:
        """Listen to the user's edits (corrections) and colour changes of ``layer``, once."""
        if id(layer) in self._connected_labels:
            return
        self._connected_labels.add(id(layer))
        layer.events.paint.connect(self._on_paint)
        layer.events.colormap.connect(self._on_labels_colours)
        # napari's undo and redo fire no event of their own, only a redraw
        layer.events.set_data.connect(self._on_labels_redrawn)

    def _on_labels_colours(self, event=None) -> None:
        self.object_list.refresh_colours()

    def _ensure_layers(self, state: ImageState) -> None:
        """Create the Labels and prompt layers of ``state`` where missing."""
        image = state.image
        ndim = len(label_shape(image))
        obj_id = self.object_list.current_id() or 1
        if state.labels is None:
            state.labels = self.viewer.add_labels(
                np.zeros(label_shape(image), dtype=np.int32),
                name=f"{image.name} SAMed-2",
                scale=image.scale,
                translate=image.translate,
                axis_labels=image.axis_labels,
                opacity=0.55,
            )
            self._connect_labels(state.labels)
        if state.points is None:
            state.points = self.viewer.add_layer(make_points_layer(image, ndim, obj_id))
            self._bind_points_keys(state.points)
        if state.boxes is None:
            state.boxes = self.viewer.add_layer(make_boxes_layer(image, ndim, obj_id))
        self.object_list.refresh_colours()

    # =========================================================================================
    # objects and prompts
    # =========================================================================================

    def add_object(self, name: str | None = None) -> int | None:
        """Add an object with the next free label id and select it; returns the id."""
        state = self._require_state()
        if state is None:
            return None
        self._ensure_layers(state)
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
        self._sync_model(state)
        session = state.session if obj_id in state.object_ids() else None
        before = session.snapshot() if session is not None else None
        if session is not None:
            session.remove_object(obj_id)
        writer = self._writer(state) if state.labels is not None else None
        if writer is not None:
            with self._recording_step():
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

    def _on_object_selected(self, obj_id: int) -> None:
        state = self.state
        if state is None:
            return
        state.selected = obj_id
        set_prompt_object(state.points, state.boxes, obj_id)
        if state.labels is not None:
            state.labels.selected_label = obj_id
        self._refresh_confidence()

    def start_points(self, sign: str = POSITIVE) -> None:
        """Select the Points layer in add mode; new clicks get ``sign``."""
        state = self._require_object()
        if state is None:
            return
        set_sign(state.points, sign)
        self.viewer.layers.selection.active = state.points
        state.points.mode = "add"

    def start_box(self) -> None:
        """Select the Shapes layer in rectangle mode."""
        state = self._require_object()
        if state is None:
            return
        self.viewer.layers.selection.active = state.boxes
        state.boxes.mode = "add_rectangle"

    def _toggle_sign(self, layer=None) -> None:
        if self.state is not None and self.state.points is not None:
            sign = toggle_sign(self.state.points)
            self.status.setText(f"New points are {sign}.")

    # =========================================================================================
    # engine actions
    # =========================================================================================

    def segment_frame(self) -> None:
        """Segment the selected object on the current frame from its prompts.

        Points and/or a box on this frame are used; without them, the object's pixels in the
        Labels layer on this frame are used as a mask prompt.
        """
        state = self._require_object()
        if state is None or not self._ready(state):
            return
        frame = self.current_frame()
        obj_id = self.object_list.current_id()
        prompts = prompts_for(state.points, state.boxes, state.geometry, frame, obj_id)
        session = state.session
        calls = []
        if not prompts.empty:
            # one engine call: a later call on the same frame would replace the earlier prompt
            box, points, labels = prompts.box, prompts.points, prompts.labels
            if box is not None and len(points):
                call = _bind(session.add_box, frame, obj_id, box, points, labels)
            elif box is not None:
                call = _bind(session.add_box, frame, obj_id, box)
            else:
                call = _bind(session.add_points, frame, obj_id, points, labels)
            calls.append(Call(call, (obj_id,)))
        else:
            mask = self._writer(state).frame(frame) == obj_id
            if not mask.any():
                show_error(
                    f"Nothing to segment {self.object_list.name_of(obj_id)!r} from on frame "
                    f"{frame}: place a point (+ point) or a box, or paint the object."
                )
                return
            calls.append(Call(_bind(session.add_mask, frame, obj_id, mask), (obj_id,)))
        self._start_run("segment", state, calls)

    def propagate_forward(self) -> None:
        self.propagate("forward")

    def propagate_backward(self) -> None:
        self.propagate("backward")

    def propagate_both(self) -> None:
        self.propagate("both")

    def propagate(self, direction: str = "both") -> None:
        """Propagate every object from the current frame (or the first prompted one)."""
        state = self._require_state()
        if state is None or not self._ready(state):
            return
        if not state.object_ids():
            show_error("Nothing to propagate yet: add a prompt and segment a frame first.")
            return
        frame = self.current_frame()
        start = frame if frame in state.results else None
        self._start_run(f"propagate {direction}", state, [Segment(direction, start=start)])

    def stop(self) -> None:
        """Stop the running propagation after the frame being computed."""
        if self.run is not None:
            self.run.stop()
            self.status.setText("Stopping…")

    def accept_correction(self) -> None:
        """Hand painted frames to the engine and re-propagate up to the next confirmed frame."""
        state = self._require_state()
        if state is None or not self._ready(state):
            return
        pairs = state.pending.take()
        if not pairs:
            show_info(
                "No correction to accept: paint or erase the object on the Labels layer first."
            )
            return
        direction = self.direction_combo.currentText()
        session, writer = state.session, self._writer(state)
        steps: list = []
        accepted = []
        confirmed = state.confirmed()
        for frame, obj_id in pairs:
            mask = writer.frame(frame) == obj_id
            if obj_id in session.object_ids:
                steps.append(Call(_bind(session.correct, frame, obj_id, mask), write=()))
            elif mask.any():
                # an object the model has not seen yet (e.g. from an existing Labels layer):
                # its painted mask is its first prompt
                steps.append(Call(_bind(session.add_mask, frame, obj_id, mask), write=()))
            else:
                continue  # erased an object the model never knew: nothing to teach it
            accepted.append(AcceptedFrame(state.image.name, frame, obj_id, mask))
            confirmed.setdefault(obj_id, set()).add(frame)
        steps += correction_segments(sorted({frame for frame, _ in pairs}), confirmed, direction)
        self._start_run("correction", state, steps, protected=confirmed, accepted=pairs)
        self.accepted.emit(accepted)

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

    # =========================================================================================
    # runs
    # =========================================================================================

    def _start_run(
        self,
        kind: str,
        state: ImageState,
        steps: list,
        protected: dict[int, set[int]] | None = None,
        accepted: list[tuple[int, int]] = (),
    ) -> None:
        """Run ``steps`` in a worker; propagated masks never overwrite ``protected`` frames
        (object id to frames; default: the frames the user confirmed so far). ``accepted``:
        the (frame, obj_id) corrections the run hands to the engine (pending again on undo)."""
        # docked by now: make sure closing napari's window ends the run (hidden windows get
        # no showEvent, so this is the one place that always sees the main window)
        self._watch_closing(self.window())
        writer = self._writer(state)
        writer.begin_run()
        self._run_kind = kind
        self._run_protected = state.confirmed() if protected is None else protected
        self._run_state = state
        self._run_before = state.session.snapshot()
        self._run_accepted = tuple(accepted)
        self._undo_guard = (state.labels, bind_shortcuts(state.labels, self, RUN_UNDO_GUARD))
        total = self._expected_frames(state, steps)
        self._run_progress = progress(total=total, desc=f"SAMed-2: {kind}")
        self.run = EngineRun(
            state.session,
            steps,
            on_result=lambda step, result: self._on_run_result(state, step, result),
            on_finished=lambda error: self._on_run_finished(state, error),
        )
        self.status.setText(f"{kind.capitalize()}… (Stop: ⇧X)")
        self._update_enabled()
        self.run.start()

    def _expected_frames(self, state: ImageState, steps: list) -> int:
        total = 0
        for step in steps:
            if isinstance(step, Call):
                total += 1
                continue
            try:
                total += state.session.frames_total(step.direction, step.start, step.stop)
            except ValueError:
                # a correction's segments start from frames the queued correct() confirms
                total += state.session.num_frames
        return max(total, 1)

    def _on_run_result(self, state: ImageState, step, result) -> None:
        if self._closed or not self._is_live(state):
            return  # the image was removed: its run is stopping, its state going
        previous = state.results.get(result.frame)
        state.results[result.frame] = previous.merged(result) if previous else result
        writer = state.writer
        if writer is None or state.labels is None:
            return  # the Labels layer was deleted mid-run; the run is being stopped
        write = frame_write(
            result.frame,
            result.masks,
            write=step.write if isinstance(step, Call) else None,
            painted=state.pending.frames.get(result.frame, ()),
            protected=self._run_protected,
        )
        if write.masks:
            on_screen = state is self.state and result.frame == self.current_frame()
            writer.write_run_frame(
                result.frame, write.masks, refresh=on_screen, takes_from=write.takes_from
            )
        if state is self.state:
            self._refresh_confidence()
        self.frame_done.emit(int(result.frame))
        if self._run_progress is not None:
            # last: napari's progress bar may process events, i.e. run the next frame's handler
            self._run_progress.update(1)

    def _on_run_finished(self, state: ImageState, error: BaseException | None) -> None:
        run, self.run = self.run, None
        if self._run_progress is not None:
            self._run_progress.close()
            self._run_progress = None
        before, self._run_before, self._run_state = self._run_before, None, None
        if self._undo_guard is not None:
            unbind_shortcuts(*self._undo_guard)
            self._undo_guard = None
        if self._closed:
            return
        labels_kept = state.writer is not None and state.labels is not None
        with self._recording_step():
            if labels_kept:
                state.writer.end_run()
            if not self._is_live(state):
                state.close_session()  # its image was removed mid-run; the worker has left it
            elif labels_kept and before is not None and run is not None:
                state.history.record(
                    self._run_kind,
                    run.session,
                    state.labels,
                    before,
                    run.session.snapshot(),
                    self._run_accepted,
                )
        stopped = run is not None and run.stop_requested.is_set()
        frames = run.frames_done if run is not None else 0
        if error is not None:
            show_error(plain_message(error, f"{self._run_kind.capitalize()} failed"))
            self.status.setText(f"{self._run_kind.capitalize()} failed; see the notification.")
        else:
            verb = "stopped after" if stopped else "done:"
            self.status.setText(
                f"{self._run_kind.capitalize()} {verb} {frames} frame(s). {self._bank_text(state)}"
            )
        self._refresh_confidence()
        self._update_enabled()
        self.run_finished.emit(
            {"kind": self._run_kind, "frames": frames, "stopped": stopped, "error": error}
        )

    def shutdown(self, timeout: float = 10.0) -> bool:
        """The viewer is closing: stop any run, wait until its worker has left the engine,
        and close every session (their prefetch threads). Returns False on timeout."""
        self._closed = True
        run = self.run
        ended = True
        if run is not None:
            run.stop()
            ended = run.wait(timeout)
        if ended:
            for state in self.states.values():
                state.close_session()
        return ended

    # =========================================================================================
    # correction tracking
    # =========================================================================================

    def _on_paint(self, event) -> None:
        state = self.state
        if state is None or state.labels is None:
            return
        if state.writer is not None and state.writer.writing:
            return
        if state.geometry is None:
            return
        touched = painted_frames(event.value, state.geometry)
        state.pending.note(touched, self.object_list.ids())
        if len(state.pending):
            frames = sorted(state.pending.frames)
            self.status.setText(
                f"Corrected frame(s) {', '.join(map(str, frames))}: press Accept (⇧C) to teach "
                "the model and re-propagate."
            )
        self._update_enabled()

    # =========================================================================================
    # undo reaches the model (model_history.py)
    # =========================================================================================

    def _is_live(self, state: ImageState) -> bool:
        """Whether ``state`` still belongs to an image layer of the viewer."""
        return any(known is state for known in self.states.values())

    def _on_labels_redrawn(self, event=None) -> None:
        state = self.state
        if state is None or self.run is not None or state.labels is None:
            return
        if getattr(event, "source", state.labels) is not state.labels:
            return
        if state.writer is not None and state.writer.writing:
            return
        self._sync_model(state, force=False)

    def _undo_during_run(self) -> None:
        show_info("Wait for the running job to finish, or stop it (⇧X), before undoing.")

    @contextmanager
    def _recording_step(self) -> Iterator[None]:
        """While an action writes its labels and records itself: the layer's history moves
        (napari clears its redo queue) before the step is recorded, and must not be synced."""
        previous, self._recording = self._recording, True
        try:
            yield
        finally:
            self._recording = previous

    def _sync_model(self, state: ImageState, force: bool = True) -> None:
        """Put the session in the state that matches the Labels layer's undo history (after
        a Ctrl-Z or Ctrl-Shift-Z of a run, a correction or an object deletion)."""
        if state.session is None or self.run is not None or self._recording:
            return
        change = state.history.sync(state.session, state.labels, force=force)
        if not change:
            return
        session = state.session
        state.results = dict(session.results)
        for step in change.undone:  # its corrections are painted but not accepted again
            for frame, obj_id in step.accepted:
                state.pending.frames.setdefault(frame, set()).add(obj_id)
        for step in change.redone:
            for frame, obj_id in step.accepted:
                state.pending.frames.get(frame, set()).discard(obj_id)
            state.pending.frames = {f: objs for f, objs in state.pending.frames.items() if objs}
        if change.beyond:
            show_warning(
                "This undo goes back further than the model can follow (the last "
                f"{state.history.limit} runs and corrections): the labels are restored, but "
                "the model still remembers those steps."
            )
        if state is self.state:
            for obj_id in session.object_ids:
                if obj_id not in self.object_list.ids():
                    self.object_list.add(int(obj_id), select=False)
            parts = []
            if change.undone:
                parts.append("undid " + ", ".join(step.kind for step in change.undone))
            if change.redone:
                parts.append("redid " + ", ".join(step.kind for step in change.redone))
            if parts:
                self.status.setText(f"The model follows the labels: {'; '.join(parts)}.")
            self._refresh_confidence()
            self._update_enabled()

    # =========================================================================================
    # frames, confidence
    # =========================================================================================

    def current_frame(self) -> int:
        state = self.state
        if state is None:
            return 0
        geometry = state.geometry or self._geometry(state)
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

    def _bank_text(self, state: ImageState) -> str:
        bank = getattr(state.session, "bank", None)
        return "" if bank is None else f"Memory bank: {len(bank)} entries."

    # =========================================================================================
    # plumbing
    # =========================================================================================

    def _require_state(self) -> ImageState | None:
        if self.state is None:
            show_error("Open or choose an image layer first.")
        return self.state

    def _require_object(self) -> ImageState | None:
        state = self._require_state()
        if state is None:
            return None
        if self.object_list.current_id() is None:
            self.add_object()
        self._ensure_layers(state)
        set_prompt_object(state.points, state.boxes, self.object_list.current_id())
        return state

    def _geometry(self, state: ImageState) -> FrameGeometry:
        image = state.image
        position = image.world_to_data(self.viewer.dims.point)
        return FrameGeometry.for_layer(image.data.shape, image.rgb, state.frame_axis, position)

    def _ready(self, state: ImageState) -> bool:
        """Make sure a model, a geometry, a session and the layers exist; notify otherwise."""
        if self.run is not None:
            show_info("Wait for the running job to finish, or stop it (⇧X).")
            return False
        self._sync_model(state)
        if self.model is None:
            show_error("Load a model first (Model ▸ Load model).")
            return False
        try:
            geometry = self._geometry(state)
        except FrameAxisError as error:
            show_error(plain_message(error, "Choose the frame axis"))
            return False
        if state.session is None or geometry != state.geometry:
            try:
                settings = SessionSettings(
                    memory=MemorySettings(gate_threshold=state.gate_threshold)
                )
                session = PropagationSession(
                    self.model,
                    geometry.stack(state.image.data),
                    axis=0,
                    memory=state.memory,
                    settings=settings,
                    rgb=state.image.rgb,
                    zoom=state.zoom,
                    connected=state.connected,
                    motion=state.follows_motion(),
                )
            except (ValueError, RuntimeError, MemoryError) as error:
                show_error(plain_message(error, "This image cannot be segmented"))
                return False
            state.close_session()
            state.session = session
            state.geometry = geometry
        self._ensure_layers(state)
        return True

    def _writer(self, state: ImageState) -> LabelsWriter:
        if state.geometry is None:
            state.geometry = self._geometry(state)
        if state.writer is None or state.writer.layer is not state.labels:
            state.writer = LabelsWriter(state.labels, state.geometry)
        return state.writer

    def _colour_of(self, obj_id: int) -> np.ndarray:
        state = self.state
        if state is not None and state.labels is not None:
            return np.asarray(state.labels.get_color(obj_id))
        return np.array([0.6, 0.6, 0.6, 1.0])

    def _update_enabled(self) -> None:
        running = self.run is not None
        has_image = self.state is not None
        for widget in (
            self.segment_button,
            self.forward_button,
            self.backward_button,
            self.both_button,
            self.weak_button,
            self.image_combo,
            self.axis_combo,
            self.labels_combo,
            self.object_list,
            self.objects_panel.positive_button,
            self.objects_panel.negative_button,
            self.objects_panel.box_button,
            self.model_picker,
            self.memory_combo,
            self.gate_spin,
            self.zoom_check,
            self.connected_check,
            self.motion_check,
        ):
            widget.setEnabled(not running)
        for widget in (self.segment_button, self.forward_button, self.backward_button):
            widget.setEnabled(not running and has_image)
        self.accept_button.setEnabled(
            not running and self.state is not None and len(self.state.pending) > 0
        )
        self.stop_button.setEnabled(running)
        if self.state is not None and self.state.memory != "selective":
            self.gate_spin.setEnabled(False)  # stock SAM2 remembers every frame
        if self.axis_combo.count() == 1 and self.axis_combo.itemData(0) is None:
            self.axis_combo.setEnabled(False)  # a 2-D image: nothing to choose

    # Qt: stop the worker when the main window closes; release the viewer when we close -------

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
            self._closing_filter = WindowCloseWatcher(self.shutdown, parent=self)
            window.installEventFilter(self._closing_filter)


def _bind(function, *args):
    """``function`` with ``args`` bound, to call later in the worker thread."""

    def call():
        return function(*args)

    return call
