"""One writer at a time: a second writer is refused quickly, naming the holder; a lock left by
a killed process does not lock the set."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from napari_samed2.labelset import LabelSet, LabelSetLockedError
from napari_samed2.labelset.format import HOLDER_FILE

from .conftest import frame_from_seed, start_child

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and flock are POSIX")

HOLDER = """
import sys, time
from napari_samed2.labelset import LabelSet

labelset = LabelSet.open(sys.argv[1])
with labelset.writing():
    print("holding", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(labelset):
    child = start_child(HOLDER, labelset.path)
    assert child.stdout.readline() == "holding\n", child.stderr.read()
    yield child
    if child.poll() is None:
        child.kill()
        child.communicate(timeout=30)


def test_second_writer_is_refused_quickly_naming_the_holder(labelset, holder):
    started = time.monotonic()
    with pytest.raises(LabelSetLockedError) as refused:
        labelset.add(*frame_from_seed(0))
    waited = time.monotonic() - started
    assert 0.9 < waited < 3.0  # the 1 s grace for a short append, then no more
    message = str(refused.value)
    assert f"process {holder.pid} on host {socket.gethostname()!r}" in message
    assert str(labelset.path) in message
    assert isinstance(refused.value, RuntimeError)
    assert labelset.ids() == []  # nothing written
    # removing is a write too
    with pytest.raises(LabelSetLockedError):
        labelset.remove(1)


def test_a_lock_left_by_a_killed_process_does_not_block(labelset, holder):
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)
    assert (labelset.path / HOLDER_FILE).exists()  # the killed holder's record stays behind
    patient = LabelSet.open(labelset.path, lock_timeout=30)  # would wait 30 s on a held lock
    started = time.monotonic()
    entry = patient.add(*frame_from_seed(0))
    assert time.monotonic() - started < 5
    assert entry.id == 1
    assert not (labelset.path / HOLDER_FILE).exists()  # the new holder's, removed on release


def test_two_writers_in_one_process_are_refused_too(labelset):
    other = LabelSet.open(labelset.path, lock_timeout=0.1)
    with labelset.writing():
        labelset.add(*frame_from_seed(0))  # re-entrant for its holder
        with pytest.raises(LabelSetLockedError, match=f"process {os.getpid()} "):
            other.add(*frame_from_seed(1))
    assert other.add(*frame_from_seed(1)).id == 2


def test_threads_of_one_process_take_turns(labelset):
    shared = LabelSet.open(labelset.path, lock_timeout=30)

    def append(seed):
        for i in range(15):
            shared.add(*frame_from_seed(seed + i), source={"kind": "layer", "name": str(seed)})

    threads = [threading.Thread(target=append, args=(seed,)) for seed in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = labelset.entries()
    assert [e.id for e in entries] == list(range(1, 31))
    assert sorted(e.source["name"] for e in entries) == ["0"] * 15 + ["100"] * 15


def test_readers_need_no_lock(labelset, holder):
    labelset_copy = LabelSet.open(labelset.path)
    assert len(labelset_copy) == 0
    assert labelset_copy.summary()["entries"] == 0
