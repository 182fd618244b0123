"""The label set's writer lock: one writer at a time, freed by the OS when its holder dies.

An flock(2) on ``SET/.lock`` through `filelock`: the kernel drops it with the holder's last
file descriptor, so a killed writer never leaves the set locked. Who holds it (pid, host,
user, since) is written beside it for the error the next writer gets.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import socket
import threading
from pathlib import Path

import filelock

from ..atomic import write_text_atomic
from .format import HOLDER_FILE, LOCK_FILE, LabelSetLockedError
from .provenance import os_user, utc_now

# filelock >= 4 may fall back to a lock file whose mere existence locks (where the file system
# has no flock); a killed holder would leave that one behind, so we ask for flock or an error.
_NO_SOFT_LOCK = (
    {"fallback_to_soft": False}
    if "fallback_to_soft" in inspect.signature(filelock.FileLock.__init__).parameters
    else {}
)
LOCK_TIMEOUT = 1.0  # seconds a writer waits for another's short append before refusing


class WriterLock:
    """Re-entrant lock on one label set; `LabelSetLockedError` when another process has it."""

    def __init__(self, set_path: str | os.PathLike, timeout: float = LOCK_TIMEOUT) -> None:
        self.set_path = Path(set_path)
        self.timeout = float(timeout)
        # thread_local=False: the widget appends from worker threads and the UI thread alike
        self._lock = filelock.FileLock(
            self.set_path / LOCK_FILE, timeout=self.timeout, thread_local=False, **_NO_SOFT_LOCK
        )
        self._holder = self.set_path / HOLDER_FILE
        # the flock counts re-entries per process, not per thread: threads queue here first
        self._threads = threading.RLock()

    @property
    def depth(self) -> int:
        """How many times this process holds it (0: not held)."""
        return self._lock.lock_counter

    def acquire(self) -> None:
        if not self._threads.acquire(timeout=self.timeout):
            raise LabelSetLockedError(
                f"label set {str(self.set_path)!r} is being written by another thread of this "
                f"process; waited {self.timeout:g} s"
            )
        try:
            self._lock.acquire()
        except filelock.Timeout:
            self._threads.release()
            raise LabelSetLockedError(
                f"label set {str(self.set_path)!r} is being written by {self.holder()}; "
                f"waited {self.timeout:g} s. Try again when it is done (the lock is freed when "
                "that process ends, even if it is killed)"
            ) from None
        except BaseException:
            self._threads.release()
            raise
        if self._lock.lock_counter == 1:
            try:
                record = {"pid": os.getpid(), "host": socket.gethostname()}
                record.update(user=os_user(), since=utc_now())
                write_text_atomic(self._holder, json.dumps(record) + "\n")
            except BaseException:
                self._lock.release()
                self._threads.release()
                raise

    def release(self) -> None:
        if self._lock.lock_counter == 1:
            # still ours while we remove it: no other writer can be reading a fresh record
            with contextlib.suppress(OSError):
                self._holder.unlink()
        try:
            self._lock.release()
        finally:
            self._threads.release()

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def holder(self) -> str:
        """Who holds the lock, in words: ``process 4242 on host 'lab-pc' (user 'ana') since
        2025-01-31T14:02:11Z``, or ``another process`` when it has not said yet."""
        try:
            record = json.loads(self._holder.read_text())
            pid, host = int(record["pid"]), str(record["host"])
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"
        if host == socket.gethostname() and not _alive(pid):
            return "another process"  # a record left by a killed holder, not the live one
        user = f" (user {record.get('user')!r})" if record.get("user") else ""
        return f"process {pid} on host {host!r}{user} since {record.get('since')}"


def _alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill on Windows would terminate the process, not probe it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    return True
