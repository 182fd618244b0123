"""The interactive demo: open the demo volume, dock the annotator, load the model, click the
demo's prompts and propagate, all through the widget as a user would (`samed2 demo`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..model import DEFAULT_MODEL, LoadedModel
from .prompt_layers import NEGATIVE, POSITIVE, set_sign
from .widget import SAMed2Widget


def show_demo(
    viewer,
    sample,
    prompts: Sequence,
    model_name: str = DEFAULT_MODEL,
    device: str | None = None,
    model: LoadedModel | None = None,
    precision: str | None = None,
) -> SAMed2Widget:
    """Put the demo in ``viewer`` and run it; returns the docked widget.

    Parameters
    ----------
    viewer : napari.Viewer
    sample : SyntheticSample
        ``.image`` (Z, Y, X) and ``.labels`` (ground truth, shown hidden).
    prompts : sequence of pipeline.Prompt
        Points, negative points and boxes per frame and object id.
    model_name, device, precision : str
        What the widget's model picker loads (in its worker) when ``model`` is None.
    model : LoadedModel, optional
        A model to use directly (tests).
    """
    axes = ("z", "y", "x")
    image = viewer.add_image(sample.image, name="demo volume", colormap="gray", axis_labels=axes)
    viewer.add_labels(
        sample.labels, name="demo ground truth", visible=False, opacity=0.5, axis_labels=axes
    )
    widget = SAMed2Widget(viewer)
    viewer.window.add_dock_widget(widget, name="SAMed-2 annotator", area="right")
    widget.select_image(image)
    script = DemoScript(widget, prompts)
    widget.demo_script = script  # keep it alive as long as the widget
    if model is not None:
        widget.set_model(model)
        script.start()
        return widget
    picker = widget.model_picker
    index = picker.model_combo.findData(model_name)
    if index < 0:
        picker.add_checkpoint(Path(model_name))
    else:
        picker.model_combo.setCurrentIndex(index)
    if device:
        picker.device_combo.setCurrentText(str(device))
    if precision:
        picker.precision_combo.setCurrentText(precision)
    picker.model_loaded.connect(script.start_once)
    picker.load_selected()
    return widget


class DemoScript:
    """Segment each object from its prompts, then propagate both ways, one run after another."""

    def __init__(self, widget: SAMed2Widget, prompts: Sequence) -> None:
        self.widget = widget
        self.prompts = list(prompts)
        self.actions: list[Callable[[], None]] = []
        self.started = False

    def start_once(self, _loaded=None) -> None:
        if not self.started:
            self.start()

    def start(self) -> None:
        self.started = True
        by_object: dict[int, list] = {}
        for prompt in self.prompts:
            by_object.setdefault(prompt.obj_id, []).append(prompt)
        for obj_id in sorted(by_object):
            for frame in sorted({p.frame for p in by_object[obj_id]}):
                on_frame = [p for p in by_object[obj_id] if p.frame == frame]
                self.actions.append(lambda o=obj_id, f=frame, ps=on_frame: self._segment(o, f, ps))
        self.actions.append(self.widget.propagate_both)
        self.widget.run_finished.connect(self._next)
        self._next()

    def _next(self, summary: dict | None = None) -> None:
        if summary is not None and (summary["error"] is not None or summary["stopped"]):
            self.actions.clear()
        if not self.actions:
            self.widget.run_finished.disconnect(self._next)
            return
        self.actions.pop(0)()

    def _segment(self, obj_id: int, frame: int, prompts: Sequence) -> None:
        widget = self.widget
        if obj_id not in widget.object_list.ids():
            widget.object_list.add(obj_id, f"nucleus {obj_id}")
        widget.object_list.select(obj_id)
        widget.go_to_frame(frame)
        widget.start_points()
        state = widget.state
        for prompt in prompts:
            if prompt.kind == "box":
                row0, col0, row1, col1 = prompt.coords
                corners = [(row0, col0), (row0, col1), (row1, col1), (row1, col0)]
                state.boxes.add_rectangles([[frame, row, col] for row, col in corners])
            else:
                set_sign(state.points, NEGATIVE if prompt.kind == "negative" else POSITIVE)
                state.points.add([frame, *prompt.coords])
        set_sign(state.points, POSITIVE)
        widget.segment_frame()
