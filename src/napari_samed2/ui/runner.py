"""Run engine work in a napari thread worker, frame by frame, stoppable within one frame.

The worker thread only talks to the engine; results travel to the GUI thread through the
worker's ``yielded`` signal, where the widget writes them into layers. The worker may run at
most `AHEAD` frames ahead of the GUI, so Stop (checked after every frame) leaves at most one
more frame to arrive, and a busy GUI never piles up unwritten results.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from napari.qt.threading import create_worker
from qtpy.QtCore import QEvent, QObject

from ..labelset.corrections import Segment

logger = logging.getLogger(__name__)

AHEAD = 1


@dataclass(frozen=True)
class Call:
    """An engine call returning one FrameResult (a prompt or a correction).

    ``write`` names the objects whose masks the GUI writes into the Labels layer: a prompt
    writes its own object, which takes the pixels the engine gave it from the other objects
    (except those holding unaccepted paint on that frame); a correction writes nothing (the
    user's painted mask already is there).
    """

    function: Callable[[], object]
    write: tuple[int, ...] = ()


class EngineRun:
    """A sequence of corrections and propagation segments executed in one worker.

    Parameters
    ----------
    session : PropagationSession
        The engine session (used from the worker thread only while the run lives).
    steps : list of Segment or Call
        What to do, in order.
    on_result : callable
        Called in the GUI thread with each (step, FrameResult).
    on_finished : callable
        Called in the GUI thread once the worker has ended (normally, stopped or failed);
        receives the exception or None.
    """

    def __init__(
        self,
        session,
        steps: list[Segment | Call],
        on_result: Callable[[Segment | Call, object], None],
        on_finished: Callable[[BaseException | None], None],
    ) -> None:
        self.session = session
        self.steps = steps
        self.on_result = on_result
        self.on_finished = on_finished
        self.stop_requested = threading.Event()
        self.ended = threading.Event()
        self._credits = threading.Semaphore(AHEAD + 1)
        self._error: BaseException | None = None
        self.frames_done = 0
        self.worker = None
        self._handlers_running = 0
        self._finish_pending = False

    def start(self) -> None:
        worker = create_worker(self._work, _ignore_errors=True)  # errors go to on_finished
        worker.yielded.connect(self._on_yielded)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()

    def stop(self) -> None:
        """Ask the worker to end after the frame it is computing."""
        self.stop_requested.set()
        self._credits.release()  # never leave the worker waiting for a GUI that stopped

    def wait(self, timeout: float) -> bool:
        """Block until the worker thread has left the engine (True) or ``timeout`` seconds."""
        return self.ended.wait(timeout)

    # -- worker thread -------------------------------------------------------------------------

    def _work(self) -> Iterator[object]:
        try:
            yield from self._steps()
        except Exception as error:
            # kept here rather than raised: superqt's worker swallows a RuntimeError (and then
            # never emits "finished"), which would leave the widget waiting forever
            logger.error("engine run failed: %s", error, exc_info=error)
            self._error = error
        finally:
            self.ended.set()

    def _steps(self) -> Iterator[object]:
        for step in self.steps:
            if self.stop_requested.is_set():
                return
            if isinstance(step, Call):
                self._credits.acquire()
                yield step, step.function()
                continue
            frames = self.session.propagate(
                step.direction,
                start=step.start,
                stop=step.stop,
                cancel=self.stop_requested.is_set,
            )
            try:
                while True:
                    self._credits.acquire()
                    if self.stop_requested.is_set():
                        return
                    try:
                        result = next(frames)
                    except StopIteration:
                        break
                    yield step, result
            finally:
                frames.close()  # the engine keeps its session consistent on close

    # -- GUI thread ----------------------------------------------------------------------------

    def _on_yielded(self, item) -> None:
        self._handlers_running += 1  # a counter: handlers may nest through processEvents
        try:
            self.frames_done += 1
            self.on_result(*item)
        finally:
            self._handlers_running -= 1
            self._credits.release()
            if self._finish_pending and self._handlers_running == 0:
                self._finish_pending = False
                self.on_finished(self._error)

    def _on_errored(self, error: BaseException) -> None:
        self._error = error

    def _on_finished(self) -> None:
        # A result handler that lets Qt process events (napari's progress bar does) could let
        # "finished" in before it returns: finish only once the handler is done.
        if self._handlers_running:
            self._finish_pending = True
            return
        self.on_finished(self._error)


class WindowCloseWatcher(QObject):
    """Event filter calling ``on_close`` when the window it watches closes (so a run ends
    with the viewer instead of writing into layers that are going away)."""

    def __init__(self, on_close: Callable[[], object], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.on_close = on_close

    def eventFilter(self, watched, event) -> bool:  # Qt override
        if event.type() == QEvent.Type.Close:
            self.on_close()
        return False
