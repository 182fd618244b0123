"""Running the engine for the annotator: segment, propagate and accepted corrections as
worker runs, their results written frame by frame, their end, stop and shutdown, and the
model following the Labels layer's undo history.

One writer at a time: a run holds Ctrl-Z on its Labels layer, never overwrites frames the
user confirmed or painted since it began, and records one undo step (`model_history`) that
pairs the labels it wrote with the session's state before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning

from ..engine import PropagationSession
from ..labelset import AcceptedFrame, correction_segments, frame_write
from .frames import FrameAxisError
from .image_state import ImageState
from .messages import plain_message
from .prompt_layers import prompts_for
from .runner import Call, EngineRun, Segment
from .shortcuts import RUN_UNDO_GUARD, bind_shortcuts, unbind_shortcuts

if TYPE_CHECKING:
    from .widget import SAMed2Widget


class RunControl:
    """The engine runs of ``widget``: at most one at a time, in a thread worker.

    Parameters
    ----------
    widget : SAMed2Widget
        The annotator whose images, objects and Labels layers the runs work on.
    """

    def __init__(self, widget: SAMed2Widget) -> None:
        self._widget = widget
        self.run: EngineRun | None = None
        self.run_state: ImageState | None = None  # the image the run works on
        self.progress_bar: progress | None = None
        self.closed = False  # the viewer is closing: results are no longer shown
        self._kind = ""
        self._protected: dict[int, set[int]] = {}
        self._before = None  # the session's snapshot when the run began (undo)
        self._accepted: tuple[tuple[int, int], ...] = ()
        self._undo_guard: tuple[object, dict] | None = None  # Ctrl-Z held during a run
        self._recording = False  # between an action's label writes and its history record

    def segment_frame(self) -> None:
        """Segment the selected object on the current frame from its prompts.

        Points and/or a box on this frame are used; without them, the object's pixels in the
        Labels layer on this frame are used as a mask prompt.
        """
        state = self._widget.layer_binding.require_object()
        if state is None or not self.ready(state):
            return
        frame = self._widget.current_frame()
        obj_id = self._widget.object_list.current_id()
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
            mask = self._widget.layer_binding.writer(state).frame(frame) == obj_id
            if not mask.any():
                name = self._widget.object_list.name_of(obj_id)
                show_error(
                    f"Nothing to segment {name!r} from on frame "
                    f"{frame}: place a point (+ point) or a box, or paint the object."
                )
                return
            calls.append(Call(_bind(session.add_mask, frame, obj_id, mask), (obj_id,)))
        self.start("segment", state, calls)

    def propagate(self, direction: str = "both") -> None:
        """Propagate every object from the current frame (or the first prompted one)."""
        state = self._widget._require_state()
        if state is None or not self.ready(state):
            return
        if not state.object_ids():
            show_error("Nothing to propagate yet: add a prompt and segment a frame first.")
            return
        frame = self._widget.current_frame()
        start = frame if frame in state.results else None
        self.start(f"propagate {direction}", state, [Segment(direction, start=start)])

    def stop(self) -> None:
        """Stop the running propagation after the frame being computed."""
        if self.run is not None:
            self.run.stop()
            self._widget.status.setText("Stopping…")

    def accept_correction(self) -> None:
        """Hand painted frames to the engine and re-propagate up to the next confirmed frame."""
        state = self._widget._require_state()
        if state is None or not self.ready(state):
            return
        pairs = state.pending.take()
        if not pairs:
            show_info(
                "No correction to accept: paint or erase the object on the Labels layer first."
            )
            return
        direction = self._widget.direction_combo.currentText()
        session, writer = state.session, self._widget.layer_binding.writer(state)
        steps: list = []
        accepted = []
        confirmed = state.confirmed()
        present: set[int] = set()
        for frame, obj_id in pairs:
            mask = writer.frame(frame) == obj_id
            if mask.any():
                present.add(frame)
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
        corrected = sorted({frame for frame, _ in pairs})
        absent = [frame for frame in corrected if frame not in present]
        steps += correction_segments(corrected, confirmed, direction, absent)
        self.start("correction", state, steps, protected=confirmed, accepted=pairs)
        self._widget.accepted.emit(accepted)

    def start(
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
        self._widget._watch_closing(self._widget.window())
        writer = self._widget.layer_binding.writer(state)
        writer.begin_run()
        self._kind = kind
        self._protected = state.confirmed() if protected is None else protected
        self.run_state = state
        self._before = state.session.snapshot()
        self._accepted = tuple(accepted)
        self._undo_guard = (state.labels, bind_shortcuts(state.labels, self, RUN_UNDO_GUARD))
        total = self._expected_frames(state, steps)
        self.progress_bar = progress(total=total, desc=f"SAMed-2: {kind}")
        self.run = EngineRun(
            state.session,
            steps,
            on_result=lambda step, result: self._on_result(state, step, result),
            on_finished=lambda error: self._on_finished(state, error),
        )
        self._widget.status.setText(f"{kind.capitalize()}… (Stop: ⇧X)")
        self._widget._update_enabled()
        self.run.start()

    def _expected_frames(self, state: ImageState, steps: list) -> int:
        """How many frames ``steps`` will report (the progress bar's total)."""
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

    def _on_result(self, state: ImageState, step, result) -> None:
        """Write one frame's result of the run on ``state`` (GUI thread)."""
        if self.closed or not self.is_live(state):
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
            protected=self._protected,
        )
        if write.masks:
            on_screen = state is self._widget.state and result.frame == self._widget.current_frame()
            writer.write_run_frame(
                result.frame, write.masks, refresh=on_screen, takes_from=write.takes_from
            )
        if state is self._widget.state:
            self._widget._refresh_confidence()
        self._widget.frame_done.emit(int(result.frame))
        if self.progress_bar is not None:
            # last: napari's progress bar may process events, i.e. run the next frame's handler
            self.progress_bar.update(1)

    def _on_finished(self, state: ImageState, error: BaseException | None) -> None:
        """The run on ``state`` ended: record its undo step and report."""
        run, self.run = self.run, None
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None
        before, self._before, self.run_state = self._before, None, None
        if self._undo_guard is not None:
            unbind_shortcuts(*self._undo_guard)
            self._undo_guard = None
        if self.closed:
            return
        labels_kept = state.writer is not None and state.labels is not None
        with self.recording_step():
            if labels_kept:
                state.writer.end_run()
            if not self.is_live(state):
                state.close_session()  # its image was removed mid-run; the worker has left it
            elif labels_kept and before is not None and run is not None:
                state.history.record(
                    self._kind,
                    run.session,
                    state.labels,
                    before,
                    run.session.snapshot(),
                    self._accepted,
                )
        stopped = run is not None and run.stop_requested.is_set()
        frames = run.frames_done if run is not None else 0
        if error is not None:
            show_error(plain_message(error, f"{self._kind.capitalize()} failed"))
            self._widget.status.setText(f"{self._kind.capitalize()} failed; see the notification.")
        else:
            verb = "stopped after" if stopped else "done:"
            self._widget.status.setText(
                f"{self._kind.capitalize()} {verb} {frames} frame(s). {self._bank_text(state)}"
            )
        self._widget._refresh_confidence()
        self._widget._update_enabled()
        self._widget.run_finished.emit(
            {"kind": self._kind, "frames": frames, "stopped": stopped, "error": error}
        )

    def shutdown(self, timeout: float = 10.0) -> bool:
        """The viewer is closing: stop any run, wait until its worker has left the engine,
        and close every session (their prefetch threads). Returns False on timeout."""
        self.closed = True
        run = self.run
        ended = True
        if run is not None:
            run.stop()
            ended = run.wait(timeout)
        if ended:
            for state in self._widget.states.values():
                state.close_session()
        return ended

    def is_live(self, state: ImageState) -> bool:
        """Whether ``state`` still belongs to an image layer of the viewer."""
        return any(known is state for known in self._widget.states.values())

    def on_labels_redrawn(self, event=None) -> None:
        """The Labels layer was redrawn (maybe an undo): let the model follow."""
        state = self._widget.state
        if state is None or self.run is not None or state.labels is None:
            return
        if getattr(event, "source", state.labels) is not state.labels:
            return
        if state.writer is not None and state.writer.writing:
            return
        self.sync_model(state, force=False)

    def _undo_during_run(self) -> None:
        """Ctrl-Z on the Labels layer during a run: tell the user to wait."""
        show_info("Wait for the running job to finish, or stop it (⇧X), before undoing.")

    @contextmanager
    def recording_step(self) -> Iterator[None]:
        """While an action writes its labels and records itself: the layer's history moves
        (napari clears its redo queue) before the step is recorded, and must not be synced."""
        previous, self._recording = self._recording, True
        try:
            yield
        finally:
            self._recording = previous

    def sync_model(self, state: ImageState, force: bool = True) -> None:
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
        if state is self._widget.state:
            for obj_id in session.object_ids:
                if obj_id not in self._widget.object_list.ids():
                    self._widget.object_list.add(int(obj_id), select=False)
            parts = []
            if change.undone:
                parts.append("undid " + ", ".join(step.kind for step in change.undone))
            if change.redone:
                parts.append("redid " + ", ".join(step.kind for step in change.redone))
            if parts:
                self._widget.status.setText(f"The model follows the labels: {'; '.join(parts)}.")
            self._widget._refresh_confidence()
            self._widget._update_enabled()

    def _bank_text(self, state: ImageState) -> str:
        """The memory bank's size, for the status line."""
        bank = getattr(state.session, "bank", None)
        return "" if bank is None else f"Memory bank: {len(bank)} entries."

    def ready(self, state: ImageState) -> bool:
        """Make sure a model, a geometry, a session and the layers exist; notify otherwise."""
        if self.run is not None:
            show_info("Wait for the running job to finish, or stop it (⇧X).")
            return False
        self.sync_model(state)
        if self._widget.model is None:
            show_error("Load a model first (Model ▸ Load model).")
            return False
        try:
            geometry = self._widget.layer_binding.geometry(state)
        except FrameAxisError as error:
            show_error(plain_message(error, "Choose the frame axis"))
            return False
        if state.session is None or geometry != state.geometry:
            try:
                model = self._widget.model
                session = PropagationSession(
                    model,
                    geometry.stack(state.image.data),
                    axis=0,
                    options=state.effective_options(model.profile),
                    rgb=state.image.rgb,
                )
            except (ValueError, RuntimeError, MemoryError) as error:
                show_error(plain_message(error, "This image cannot be segmented"))
                return False
            state.close_session()
            state.session = session
            state.geometry = geometry
        self._widget.layer_binding.ensure_layers(state)
        return True


def _bind(function, *args):
    """``function`` with ``args`` bound, to call later in the worker thread."""

    def call():
        return function(*args)

    return call
