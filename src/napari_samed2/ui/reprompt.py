"""Re-propagate the open objects after the model changed: each image's confirmed masks (read
from its Labels layer) are given to its session again, then propagated, one run per image
through `RunControl` (so each is one undo step and confirmed frames are never overwritten).

Used by the fine-tuning panel's "Use this model" (new sessions) and by "Learn from my
corrections" (the same session, reset: its cached features stay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import QObject, Signal

from ..labelset import Segment
from ..learn_now import replay_calls
from .image_state import ImageState
from .runner import Call

if TYPE_CHECKING:
    from .widget import SAMed2Widget


class Repropagation(QObject):
    """Re-propagate the objects of several images, one run after another.

    Parameters
    ----------
    widget : SAMed2Widget
    jobs : list of (ImageState, dict of int to set of int)
        Each image and the frames the user confirmed per object (taken before the model
        changed: a new session has none).

    Signals
    -------
    done(int)
        After the last run: how many images were re-propagated.
    """

    done = Signal(int)

    def __init__(self, widget: SAMed2Widget, jobs: list[tuple[ImageState, dict[int, set[int]]]]):
        super().__init__(widget)
        self._widget = widget
        self.jobs = [(state, confirmed) for state, confirmed in jobs if confirmed]
        self.started = 0

    def start(self) -> None:
        self._widget.run_finished.connect(self._next)
        self._next()

    def _next(self, summary=None) -> None:
        run_control = self._widget.run_control
        while self.jobs:
            state, confirmed = self.jobs.pop(0)
            if not run_control.is_live(state) or state.labels is None:
                continue
            if not run_control.ready(state):
                continue
            steps = repropagation_steps(self._widget, state, confirmed)
            if not steps:
                continue
            self.started += 1
            run_control.start("re-propagation", state, steps, protected=confirmed)
            return
        self._widget.run_finished.disconnect(self._next)
        self.done.emit(self.started)


def repropagation_steps(
    widget: SAMed2Widget, state: ImageState, confirmed: dict[int, set[int]]
) -> list:
    """The run that gives ``state``'s session the confirmed masks on its Labels layer again
    and propagates every object both ways from them (nothing is written by the prompts: the
    masks already are on the layer)."""
    writer = widget.layer_binding.writer(state)
    frames = sorted(set().union(*confirmed.values()))
    on_layer = {frame: writer.frame(frame) for frame in frames}
    masks = {
        obj_id: {frame: on_layer[frame] == obj_id for frame in sorted(obj_frames)}
        for obj_id, obj_frames in confirmed.items()
    }
    calls = replay_calls(state.session, masks)
    if not calls:
        return []
    return [Call(call, write=()) for call in calls] + [Segment("both")]
