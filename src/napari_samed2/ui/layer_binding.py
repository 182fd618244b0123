"""Which layers the annotator works with: image choice, frame axis, the Labels layer and the
prompt layers of each image, and what happens when the user removes one or paints.

`LayerBinding` keeps the per-image `ImageState` of the widget in step with the viewer's layer
list: choosing an image makes (or finds) its state, a removed layer is dropped from every
state that used it (stopping a run that writes into it), and each Labels layer the annotator
writes into is listened to once (paint = a pending correction, redraw = maybe an undo).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning

from ..labelset import painted_frames
from .frames import FrameGeometry, infer_frame_axis
from .image_state import ImageState
from .labels_writer import LabelsWriter
from .panels import label_shape
from .prompt_layers import (
    POSITIVE,
    make_boxes_layer,
    make_points_layer,
    set_prompt_object,
    set_sign,
    toggle_sign,
)
from .shortcuts import POINTS_SHORTCUTS, bind_shortcuts

if TYPE_CHECKING:
    from .widget import SAMed2Widget


class LayerBinding:
    """The image, Labels and prompt layers of ``widget``'s images.

    Parameters
    ----------
    widget : SAMed2Widget
        The annotator; its ``states`` and ``state`` are the bookkeeping kept here.
    """

    def __init__(self, widget: SAMed2Widget) -> None:
        self._widget = widget
        self._connected_labels: set[int] = set()
        # (Points layer, handlers) of the points keys, to unbind when the widget closes
        self.layer_shortcuts: list[tuple[object, dict]] = []

    def bind_points_keys(self, points) -> None:
        """Bind the points keys (toggle sign) on the Points layer ``points``."""
        self.layer_shortcuts.append((points, bind_shortcuts(points, self, POINTS_SHORTCUTS)))

    def image_layers(self) -> list[Image]:
        """The viewer's image layers, in layer-list order."""
        return [layer for layer in self._widget.viewer.layers if isinstance(layer, Image)]

    def refresh_image_choices(self) -> None:
        """List the image layers; choose the first one if the current one went."""
        current = self._widget.state.image if self._widget.state else None
        images = self.image_layers()
        self._widget.image_panel.show_images(images, current if current in images else None)
        if images and current not in images:
            self._widget.image_combo.setCurrentIndex(0)
            self.on_image_chosen(0)
        elif not images:
            self.show_state(None)

    def on_layers_changed(self, event=None) -> None:
        """A layer was added or removed: list images and Labels layers again."""
        self.refresh_image_choices()
        self.refresh_labels_choices()

    def on_layer_removed(self, event) -> None:
        """Drop the removed layer from every image state that used it."""
        layer = event.value
        for key, state in list(self._widget.states.items()):
            if state.image is layer:
                if self._widget.run is not None and state is self._widget.run_control.run_state:
                    # never wait here (the GUI would freeze for the frame being computed):
                    # the worker ends after its frame, and RunControl drops the state at its end
                    self._widget.run.stop()
                else:
                    state.close_session()
                del self._widget.states[key]
                if state is self._widget.state:
                    self._widget.state = None
            for name in ("labels", "points", "boxes"):
                if getattr(state, name) is layer:
                    if (
                        name == "labels"
                        and self._widget.run is not None
                        and state is self._widget.state
                    ):
                        self._widget.run_control.stop()
                    setattr(state, name, None)
                    if name == "labels":
                        state.writer = None
        self.on_layers_changed()

    def select_image(self, layer: Image) -> None:
        """Work on image layer ``layer`` (as choosing it in the combo box does)."""
        for index in range(self._widget.image_combo.count()):
            if self._widget.image_combo.itemData(index) == id(layer):
                self._widget.image_combo.setCurrentIndex(index)
                return
        raise ValueError(f"{layer.name!r} is not an image layer of this viewer")

    def on_image_chosen(self, index: int) -> None:
        """The image combo box chose entry ``index``: work on that image."""
        if index < 0:
            return
        layer_id = self._widget.image_combo.itemData(index)
        layer = next((lyr for lyr in self.image_layers() if id(lyr) == layer_id), None)
        if layer is None:
            return
        if (
            self._widget.run is not None
            and self._widget.state is not None
            and self._widget.state.image is not layer
        ):
            show_warning("Stop the running propagation before switching images.")
            self.select_image(self._widget.state.image)
            return
        self.save_objects()
        state = self._widget.states.get(id(layer))
        if state is None:
            state = ImageState(image=layer)
            inference = infer_frame_axis(layer.data.shape, layer.rgb, layer.axis_labels)
            state.frame_axis = inference.default
            self._widget.states[id(layer)] = state
            if inference.needs_choice:
                show_info(
                    f"{layer.name!r} has {len(inference.candidates) + 2} dimensions: choose the "
                    "axis to propagate along in 'Frame axis'."
                )
        self.show_state(state)

    def save_objects(self) -> None:
        """Keep the object list of the current image on its state."""
        if self._widget.state is not None:
            self._widget.state.objects = self._widget.object_list.objects()
            self._widget.state.selected = self._widget.object_list.current_id()

    def show_state(self, state: ImageState | None) -> None:
        """Work on image ``state`` (None: no image): its objects, axis, labels, options."""
        self._widget.state = state
        self._widget.object_list.clear()
        if state is not None:
            for obj in state.objects:
                self._widget.object_list.add(obj.obj_id, obj.name, select=False)
            if state.selected is not None:
                self._widget.object_list.select(state.selected)
        self.refresh_axis_choices()
        self.refresh_labels_choices()
        self._widget.options.show(state)
        self._widget._refresh_confidence()
        self._widget._update_enabled()

    def refresh_axis_choices(self) -> None:
        """List the current image's axes, its frame axis selected."""
        state = self._widget.state
        self._widget.image_panel.show_axes(
            state.image if state else None, state.frame_axis if state else None
        )

    def on_axis_chosen(self, index: int) -> None:
        """The axis combo box chose entry ``index``."""
        self.set_frame_axis(self._widget.axis_combo.itemData(index))

    def set_frame_axis(self, axis: int | None) -> None:
        """Propagate along layer axis ``axis`` of the current image (restarts its session)."""
        state = self._widget._require_state()
        if state is None or axis == state.frame_axis:
            return
        if self._widget.run is not None:
            show_warning("Stop the running propagation before changing the axis.")
            self.refresh_axis_choices()
            return
        state.frame_axis = axis
        state.reset_session()
        self.refresh_axis_choices()
        self._widget.options.show(state)  # "Follow motion" follows a time axis
        self._widget._refresh_confidence()

    def labels_layers(self) -> list[Labels]:
        """The viewer's Labels layers, in layer-list order."""
        return [layer for layer in self._widget.viewer.layers if isinstance(layer, Labels)]

    def refresh_labels_choices(self) -> None:
        """List the Labels layers that fit the current image."""
        state = self._widget.state
        self._widget.image_panel.show_labels(
            self.labels_layers(), state.image if state else None, state.labels if state else None
        )

    def on_labels_chosen(self, index: int) -> None:
        """The Labels combo box chose entry ``index``."""
        layer_id = self._widget.labels_combo.itemData(index)
        layer = next((lyr for lyr in self.labels_layers() if id(lyr) == layer_id), None)
        if layer is not None:
            self.use_labels_layer(layer)

    def use_labels_layer(self, layer: Labels) -> None:
        """Write into the existing Labels layer ``layer``; its label ids become objects."""
        state = self._widget._require_state()
        if state is None:
            return
        if self._widget.run is not None:
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
        self.connect_labels(layer)
        for value in np.unique(np.asarray(layer.data)):
            if value > 0 and int(value) not in self._widget.object_list.ids():
                self._widget.object_list.add(int(value), select=False)
        self.refresh_labels_choices()

    def connect_labels(self, layer: Labels) -> None:
        """Listen to the user's edits (corrections) and colour changes of ``layer``, once."""
        if id(layer) in self._connected_labels:
            return
        self._connected_labels.add(id(layer))
        layer.events.paint.connect(self.on_paint)
        layer.events.colormap.connect(self.on_labels_colours)
        # napari's undo and redo fire no event of their own, only a redraw
        layer.events.set_data.connect(self._widget.run_control.on_labels_redrawn)

    def on_labels_colours(self, event=None) -> None:
        """The Labels layer's colours changed: recolour the object list."""
        self._widget.object_list.refresh_colours()

    def ensure_layers(self, state: ImageState) -> None:
        """Create the Labels and prompt layers of ``state`` where missing."""
        image = state.image
        ndim = len(label_shape(image))
        obj_id = self._widget.object_list.current_id() or 1
        if state.labels is None:
            state.labels = self._widget.viewer.add_labels(
                np.zeros(label_shape(image), dtype=np.int32),
                name=f"{image.name} SAMed-2",
                scale=image.scale,
                translate=image.translate,
                axis_labels=image.axis_labels,
                opacity=0.55,
            )
            self.connect_labels(state.labels)
        if state.points is None:
            state.points = self._widget.viewer.add_layer(make_points_layer(image, ndim, obj_id))
            self.bind_points_keys(state.points)
        if state.boxes is None:
            state.boxes = self._widget.viewer.add_layer(make_boxes_layer(image, ndim, obj_id))
        self._widget.object_list.refresh_colours()

    def on_paint(self, event) -> None:
        """The user painted: note the touched frames as pending corrections."""
        state = self._widget.state
        if state is None or state.labels is None:
            return
        if state.writer is not None and state.writer.writing:
            return
        if state.geometry is None:
            return
        touched = painted_frames(event.value, state.geometry)
        state.pending.note(touched, self._widget.object_list.ids())
        if len(state.pending):
            frames = sorted(state.pending.frames)
            self._widget.status.setText(
                f"Corrected frame(s) {', '.join(map(str, frames))}: press Accept (⇧C) to teach "
                "the model and re-propagate."
            )
        self._widget._update_enabled()

    def geometry(self, state: ImageState) -> FrameGeometry:
        """The frame geometry of ``state``'s image at the viewer's position."""
        image = state.image
        position = image.world_to_data(self._widget.viewer.dims.point)
        return FrameGeometry.for_layer(image.data.shape, image.rgb, state.frame_axis, position)

    def writer(self, state: ImageState) -> LabelsWriter:
        """The `LabelsWriter` of ``state``'s Labels layer (made when missing or stale)."""
        if state.geometry is None:
            state.geometry = self.geometry(state)
        if state.writer is None or state.writer.layer is not state.labels:
            state.writer = LabelsWriter(state.labels, state.geometry)
        return state.writer

    def on_object_selected(self, obj_id: int) -> None:
        """Object ``obj_id`` was selected: new prompts and paint are its."""
        state = self._widget.state
        if state is None:
            return
        state.selected = obj_id
        set_prompt_object(state.points, state.boxes, obj_id)
        if state.labels is not None:
            state.labels.selected_label = obj_id
        self._widget._refresh_confidence()

    def start_points(self, sign: str = POSITIVE) -> None:
        """Select the Points layer in add mode; new clicks get ``sign``."""
        state = self.require_object()
        if state is None:
            return
        set_sign(state.points, sign)
        self._widget.viewer.layers.selection.active = state.points
        state.points.mode = "add"

    def start_box(self) -> None:
        """Select the Shapes layer in rectangle mode."""
        state = self.require_object()
        if state is None:
            return
        self._widget.viewer.layers.selection.active = state.boxes
        state.boxes.mode = "add_rectangle"

    def _toggle_sign(self, layer=None) -> None:
        """Toggle the sign of new points (the points layer's key)."""
        if self._widget.state is not None and self._widget.state.points is not None:
            sign = toggle_sign(self._widget.state.points)
            self._widget.status.setText(f"New points are {sign}.")

    def require_object(self) -> ImageState | None:
        """The current image state with a selected object and its layers, or None."""
        state = self._widget._require_state()
        if state is None:
            return None
        if self._widget.object_list.current_id() is None:
            self._widget.add_object()
        self.ensure_layers(state)
        set_prompt_object(state.points, state.boxes, self._widget.object_list.current_id())
        return state
