"""Log records of propagation runs: when one starts, how far it got, how long it took."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def logged_run(run: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Wrap a session's frame generator ``run(self, forward, backward, cancel)`` with logging.

    One INFO record when the first frame is asked for (frames planned, objects, memory mode)
    and one when the run ends or is cancelled or closed (frames done, seconds; a WARNING
    naming the error when it fails), through the logger of the module that defines ``run``.
    """
    logger = logging.getLogger(run.__module__)

    @functools.wraps(run)
    def logged(session, forward: Sequence[int], backward: Sequence[int], cancel) -> Iterator[Any]:
        planned = len(forward) + len(backward)
        logger.info(
            "propagation started: %d of %d frames (%d forward, %d backward), %d object(s), "
            "options %s, model %s (%s profile)",
            planned,
            session.num_frames,
            len(forward),
            len(backward),
            len(session.object_ids),
            session.options.to_dict(),
            session.model_name,
            session.profile.name,
        )
        began = time.perf_counter()
        done = 0
        outcome, level = "stopped", logging.INFO
        frames = run(session, forward, backward, cancel)
        try:
            for result in frames:
                done += 1
                yield result
            outcome = "finished"
        except Exception as error:
            # The caller gets the exception; the log keeps how far the run got.
            outcome, level = f"failed ({type(error).__name__}: {error})", logging.WARNING
            raise
        finally:
            frames.close()  # the run's own clean-up (its writer lock) happens now, not at GC
            seconds = time.perf_counter() - began
            logger.log(
                level,
                "propagation %s: %d of %d frames in %.1f s (%.1f frames/s)",
                outcome,
                done,
                planned,
                seconds,
                done / seconds if seconds > 0 else 0.0,
            )

    return logged
