"""Snapshots of a session's state, so an undo in the GUI can take the model back too.

What a `PropagationSession` learns from prompts, corrections and propagation lives in its
object tracks (sam2's per-frame outputs: mask logits, object pointers, mask memories), its
per-frame results and its long-term bank. A `SessionSnapshot` keeps all of it **by reference**:
the session never changes a stored tensor, a result's mask or a bank entry in place (it
replaces them, or mutates only the dicts that hold them), so copying the dicts and sets is
enough and a snapshot costs little more than the tensors that later runs replace.

Not part of a snapshot: the settings (memory gate, ``connected``, ``motion``: the user's
choices, not what the model learned), the feature cache (a function of the image) and which
bank object the session uses (loading a bank is not undone; the entries of the bank the
snapshot saw are).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .memory import BankEntry, LongTermBank
from .results import FrameResult
from .tracking import ObjectTrack

if TYPE_CHECKING:
    from .session import PropagationSession


@dataclass(frozen=True)
class SessionSnapshot:
    """What a session had learned at one moment (see `take_snapshot`).

    Attributes
    ----------
    tracks : dict of int to ObjectTrack
        Copies of the object tracks (their dicts copied, tensors shared).
    results : dict of int to FrameResult
        Copies of the per-frame results (masks shared).
    last_frame : int or None
        The session's ``last_frame``.
    bank : LongTermBank
        The bank the session used.
    bank_entries : tuple of BankEntry
        The bank's entries then.
    flipped : dict or None
        Snapshots of the flip-averaging sessions of a 2-D image (None: none existed).
    owner : weakref to PropagationSession
        The session it was taken from (the only one it can be restored into).
    """

    tracks: dict[int, ObjectTrack]
    results: dict[int, FrameResult]
    last_frame: int | None
    bank: LongTermBank
    bank_entries: tuple[BankEntry, ...]
    flipped: dict[tuple[int, ...], SessionSnapshot] | None
    owner: weakref.ref

    @property
    def object_ids(self) -> list[int]:
        """Objects the session knew."""
        return sorted(self.tracks)

    @property
    def confirmed_frames(self) -> dict[int, list[int]]:
        """Object id to the frames prompted or corrected then (as the session reports them)."""
        return {obj: sorted(track.confirmed) for obj, track in sorted(self.tracks.items())}


def take_snapshot(session: PropagationSession) -> SessionSnapshot:
    """Capture ``session``'s learned state (cheap: tensors and arrays are shared)."""
    flipped = session._flipped
    return SessionSnapshot(
        tracks={obj: _copy_track(track) for obj, track in session._tracks.items()},
        results={frame: _copy_result(result) for frame, result in session.results.items()},
        last_frame=session.last_frame,
        bank=session.bank,
        bank_entries=tuple(session.bank.entries),
        flipped=None
        if flipped is None
        else {flip: take_snapshot(other) for flip, other in flipped.items()},
        owner=weakref.ref(session),
    )


def restore_snapshot(session: PropagationSession, snapshot: SessionSnapshot) -> None:
    """Put ``session`` back into the state ``snapshot`` captured.

    The snapshot stays usable (it is copied in, not handed over), so the same snapshot can be
    restored again, e.g. undo, redo, undo. The bank the snapshot saw gets its entries back
    (its revision moves on when they differ); the session keeps using whichever bank it uses
    now.

    Raises
    ------
    ValueError
        If ``snapshot`` was taken from another session (its tracks hold that session's
        encoders and regions).
    """
    if snapshot.owner() is not session:
        raise ValueError(
            "this snapshot was taken from another PropagationSession; restore it into the "
            "session whose snapshot() made it"
        )
    session._tracks.clear()
    session._tracks.update({obj: _copy_track(t) for obj, t in snapshot.tracks.items()})
    session.results.clear()
    session.results.update({f: _copy_result(r) for f, r in snapshot.results.items()})
    session.last_frame = snapshot.last_frame
    snapshot.bank.set_entries(snapshot.bank_entries)
    flipped = session._flipped or {}
    for flip, other in flipped.items():
        if snapshot.flipped is not None and flip in snapshot.flipped:
            restore_snapshot(other, snapshot.flipped[flip])
        else:  # the flipped sessions were made after the snapshot: they knew nothing then
            other.reset(bank=True)


def _copy_track(track: ObjectTrack) -> ObjectTrack:
    # the output dicts are copied because the session fills their "maskmem_features" and
    # replaces their "pred_masks" (flip averaging) in place; the region and encoder are shared
    return replace(
        track,
        cond={frame: dict(out) for frame, out in track.cond.items()},
        non_cond={frame: dict(out) for frame, out in track.non_cond.items()},
        tracked=dict(track.tracked),
        points={frame: dict(points) for frame, points in track.points.items()},
        confirmed=set(track.confirmed),
        bank_uids=dict(track.bank_uids),
        logits=dict(track.logits),
    )


def _copy_result(result: FrameResult) -> FrameResult:
    return FrameResult(
        frame=result.frame,
        masks=dict(result.masks),
        iou=dict(result.iou),
        object_score=dict(result.object_score),
        in_memory=dict(result.in_memory),
        prompted=dict(result.prompted),
    )
