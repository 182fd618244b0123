"""One session, one writer: calls that change a session are refused while one of its
propagations runs, and work again once it has ended (finished, closed, cancelled or failed)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from napari_samed2.engine import PropagationSession
from napari_samed2.engine.errors import SessionBusyError

from .conftest import disk_that_ends, iou

FRAMES, MASKS = disk_that_ends()
DISK = MASKS[0]

# every call that changes the session, as (name, call)
WRITERS = [
    ("add_points", lambda s: s.add_points(2, 2, [[10, 10]], [1])),
    ("add_box", lambda s: s.add_box(2, 2, (5, 5, 20, 20))),
    ("add_mask", lambda s: s.add_mask(2, 2, DISK)),
    ("correct", lambda s: s.correct(2, 1, DISK)),
    ("remove_object", lambda s: s.remove_object(1)),
    ("reset", lambda s: s.reset()),
    ("propagate", lambda s: s.propagate("forward")),
]


def _busy(name: str) -> str:
    return re.escape(
        f"{name}() was refused: a propagation of this session is running; stop it first"
    )


def _session(model) -> PropagationSession:
    session = PropagationSession(model, FRAMES)
    session.add_points(0, 1, [[32, 40]], [1])
    return session


def _assert_tracked_to_the_end(session: PropagationSession, results) -> None:
    assert [r.frame for r in results] == list(range(len(FRAMES)))
    for frame in range(3):
        assert iou(session.results[frame].masks[1], MASKS[frame]) > 0.6


@pytest.mark.parametrize(("name", "call"), WRITERS)
def test_calls_are_refused_while_a_generator_is_open_and_work_after(nano, name, call):
    session = _session(nano)
    run = session.propagate("forward")
    results = [next(run), next(run)]
    with pytest.raises(SessionBusyError, match=_busy(name)):
        call(session)
    assert session.object_ids == [1]  # nothing was changed by the refused call
    results += list(run)  # the run goes on as if nothing happened
    _assert_tracked_to_the_end(session, results)
    call(session)  # the run has ended: the same call works
    if name in ("add_points", "add_box", "add_mask"):
        assert session.object_ids == [1, 2]


def test_closing_the_generator_releases_the_session(nano):
    session = _session(nano)
    run = session.propagate("forward")
    next(run)
    run.close()
    result = session.add_points(1, 1, [[32, 40]], [1])
    assert iou(result.masks[1], DISK) > 0.6


def test_dropping_a_half_consumed_generator_releases_the_session(nano):
    session = _session(nano)
    run = session.propagate("forward")
    next(run)
    del run  # CPython closes it at once
    assert iou(session.add_points(1, 1, [[32, 40]], [1]).masks[1], DISK) > 0.6


def test_a_cancelled_run_releases_the_session(nano):
    session = _session(nano)
    done = []
    for result in session.propagate("forward", cancel=lambda: len(done) >= 3):
        done.append(result.frame)
    assert done == [0, 1, 2]
    results = list(session.propagate("forward", start=3))
    assert [r.frame for r in results] == list(range(3, len(FRAMES)))


def test_a_run_that_fails_releases_the_session(nano, tmp_path: Path):
    """A real zarr stack on disk with a corrupt chunk: the run raises on that frame, and the
    session is usable afterwards."""
    zarr = pytest.importorskip("zarr")
    array = zarr.create_array(
        str(tmp_path / "stack.zarr"), shape=FRAMES.shape, chunks=(1, 64, 80), dtype="uint8"
    )
    array[:] = FRAMES
    chunk = tmp_path / "stack.zarr" / "c" / "4" / "0" / "0"
    assert chunk.is_file()
    chunk.write_bytes(b"not a compressed chunk")
    session = PropagationSession(nano, zarr.open_array(str(tmp_path / "stack.zarr")))
    session.add_points(0, 1, [[32, 40]], [1])
    done = []
    with pytest.raises(Exception) as error:  # zarr's codec error, whatever its class
        for result in session.propagate("forward"):
            done.append(result.frame)
    assert not isinstance(error.value, SessionBusyError)
    assert max(done) < 4
    result = session.add_points(1, 1, [[32, 40]], [1])  # released: prompting works
    assert iou(result.masks[1], DISK) > 0.6


def test_a_call_from_another_thread_during_a_run_is_refused(nano):
    """A real propagation runs in a worker thread; the main thread's calls are refused
    while it runs, the worker's run is not disturbed, and the calls work after it."""
    session = _session(nano)
    started, go_on = threading.Event(), threading.Event()
    results, failures = [], []

    def work():
        try:
            for result in session.propagate("forward"):
                results.append(result)
                started.set()
                go_on.wait(timeout=60)
        except BaseException as error:  # reported to the main thread below
            failures.append(error)
            started.set()

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(timeout=60)
    refused = []
    for name, call in WRITERS:
        with pytest.raises(SessionBusyError, match=_busy(name)):
            call(session)
        refused.append(name)
    go_on.set()
    worker.join(timeout=120)
    assert not worker.is_alive() and failures == []
    assert refused == [name for name, _ in WRITERS]
    _assert_tracked_to_the_end(session, results)
    result = session.add_points(1, 1, [[32, 40]], [1])
    assert iou(result.masks[1], DISK) > 0.6


def test_free_running_calls_from_another_thread_never_break_a_run(nano):
    """Unpaced: once the run has started, the other thread keeps trying to add an object
    as fast as it can. Every try is refused and the run never crashes."""
    session = _session(nano)
    started = threading.Event()
    results, failures = [], []

    def work():
        try:
            for result in session.propagate("forward"):
                results.append(result)
                started.set()
        except BaseException as error:  # reported to the main thread below
            failures.append(error)
        finally:
            started.set()

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(timeout=60)
    refusals = 0
    while worker.is_alive():
        try:
            session.add_points(3, 2, [[10, 10]], [1])
            pass  # possible only after the run has yielded its last frame
        except SessionBusyError:
            refusals += 1
    worker.join()
    assert failures == [] and refusals > 0
    assert [r.frame for r in results] == list(range(len(FRAMES)))
    assert all(2 not in r.masks for r in results)  # no object slipped into the run
