"""Which of the annotator's controls can be used now: none that changes the session while a
run goes on; the gate only with the selective memory; the axis only when there is a choice."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .widget import SAMed2Widget


def update_enabled(annotator: SAMed2Widget) -> None:
    """Enable or disable ``annotator``'s controls for its current state."""
    running = annotator.run is not None
    has_image = annotator.state is not None
    for control in (
        annotator.segment_button,
        annotator.forward_button,
        annotator.backward_button,
        annotator.both_button,
        annotator.weak_button,
        annotator.image_combo,
        annotator.axis_combo,
        annotator.labels_combo,
        annotator.object_list,
        annotator.objects_panel.positive_button,
        annotator.objects_panel.negative_button,
        annotator.objects_panel.box_button,
        annotator.model_picker,
        annotator.memory_combo,
        annotator.gate_spin,
        annotator.zoom_check,
        annotator.connected_check,
        annotator.motion_check,
        annotator.ends_once_check,
    ):
        control.setEnabled(not running)
    for control in (annotator.segment_button, annotator.forward_button, annotator.backward_button):
        control.setEnabled(not running and has_image)
    annotator.accept_button.setEnabled(
        not running and annotator.state is not None and len(annotator.state.pending) > 0
    )
    annotator.stop_button.setEnabled(running)
    if (
        annotator.state is not None
        and annotator.options.effective(annotator.state).memory != "selective"
    ):
        annotator.gate_spin.setEnabled(False)  # stock SAM2 remembers every frame
    if annotator.axis_combo.count() == 1 and annotator.axis_combo.itemData(0) is None:
        annotator.axis_combo.setEnabled(False)  # a 2-D image: nothing to choose
