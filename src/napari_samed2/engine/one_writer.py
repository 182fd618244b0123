"""One writer at a time: a session's calls that change it refuse to run (`SessionBusyError`)
while another one, a running propagation above all, holds its writer lock."""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager

from .errors import SessionBusyError


class WriterLock:
    """The session's writer lock, and which call holds it (for the refusal's message)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._call: str | None = None

    def locked(self) -> bool:
        return self._lock.locked()

    @contextmanager
    def writing(self, call: str):
        """Hold the session's writer lock for ``call``; `SessionBusyError` when it is held.

        Never waits: a call from the thread that holds an open propagate() generator would
        wait for ever.
        """
        if not self._lock.acquire(blocking=False):
            raise self.busy_error(call)
        self._call = call
        try:
            yield
        finally:
            self._call = None
            self._lock.release()

    def busy_error(self, call: str) -> SessionBusyError:
        holder = self._call
        if holder in (None, "propagate"):
            return SessionBusyError(
                f"{call}() was refused: a propagation of this session is running; stop it "
                "first (cancel it or close its generator) or let it finish, then call again"
            )
        return SessionBusyError(
            f"{call}() was refused: this session is busy with {holder}() in another thread; "
            "call again when it has returned"
        )


def one_writer(method):
    """Run a method that changes the session only while nothing else changes it (a running
    propagation above all); otherwise raise `SessionBusyError`. The session keeps its
    `WriterLock` in ``_writer``."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        with self._writer.writing(method.__name__):
            return method(self, *args, **kwargs)

    return guarded
