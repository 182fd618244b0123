"""`SessionOptions`: the user's choices for a propagation session, validated in one place.

The widget, the command line and the evaluation build one of these; a session takes it whole
(`PropagationSession(options=...)`) and changes it only through `PropagationSession.set_options`.
Options left at ``None`` take the model profile's default (`model.profile.ModelProfile`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Any

from ..model.profile import AXIS_KINDS, ModelProfile


class MemoryMode(str, enum.Enum):
    """Which memory a session propagates with."""

    SELECTIVE = "selective"  # SAMed-2: confidence-gated recent memory + long-term bank
    SAM2 = "sam2"  # exactly the sam2 package's video predictor

    def __str__(self) -> str:
        return self.value


MEMORY_MODES = tuple(mode.value for mode in MemoryMode)

# Options a running session may change (from the next frame on); the others shape the session
# (its memory, its regions, its encodings) and need a new one.
LIVE_OPTIONS = frozenset({"gate", "connected", "motion", "non_overlap", "ends_once"})


@dataclass(frozen=True)
class SessionOptions:
    """What a user chooses for a session.

    Attributes
    ----------
    memory : MemoryMode, str or None
        ``"selective"`` (SAMed-2's gated memory and long-term bank) or ``"sam2"``. None: the
        model profile's default (selective for SAMed-2 and nano, sam2 for SAM 2 networks).
    gate : float
        In [0, 1]: confidence (predicted IoU, with a positive object score) a propagated frame
        needs to enter the selective memory. Ignored with ``memory="sam2"``.
    zoom : bool
        Give every object its own region, chosen at its first prompt (small objects magnified).
    connected : bool or None
        Drop the parts of a propagated mask that do not overlap the object's mask on the frame
        it was tracked from. None: the model profile's default.
    motion : bool or None
        Carried masks follow the object's motion (models that carry masks). None: the profile's
        default for the axis kind (`resolved`).
    flips : bool or None
        Average the masks of a single 2-D image and its three flips. None: the profile's default.
    non_overlap : bool or None
        One object per pixel in the returned masks (the highest logit wins), as a Labels layer
        holds them; False returns each object's mask as decoded (sam2's predictor). None: the
        profile's default.
    ends_once : bool or None
        Objects end once (`engine.extent`): a propagated frame beyond one where the object's
        mask is empty, away from its prompts, is absent. Right for depth axes (an object fills
        one run of slices), wrong where objects leave and come back. None: the profile's
        default for the axis kind (`resolved`).
    """

    memory: MemoryMode | None = None
    gate: float = 0.5
    zoom: bool = False
    connected: bool | None = None
    motion: bool | None = None
    flips: bool | None = None
    non_overlap: bool | None = None
    ends_once: bool | None = None

    def __post_init__(self) -> None:
        if self.memory is not None:
            try:
                memory = MemoryMode(self.memory)
            except ValueError:
                raise ValueError(
                    f"memory must be one of {MEMORY_MODES} or None (the model's default), "
                    f"got {self.memory!r}"
                ) from None
            object.__setattr__(self, "memory", memory)
        gate = self.gate
        if isinstance(gate, bool) or not isinstance(gate, (int, float)) or math.isnan(gate):
            raise ValueError(f"gate must be a number in [0, 1], got {gate!r}")
        if not 0.0 <= float(gate) <= 1.0:
            raise ValueError(f"gate must be in [0, 1], got {gate!r}")
        object.__setattr__(self, "gate", float(gate))
        _check_flag("zoom", self.zoom, optional=False)
        for name in ("connected", "motion", "flips", "non_overlap", "ends_once"):
            _check_flag(name, getattr(self, name), optional=True)

    def replace(self, **changes: Any) -> SessionOptions:
        """A copy with ``changes`` (validated); unknown names are a `ValueError` listing the
        known ones."""
        known = [option.name for option in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown session option(s) {unknown}; known: {known}")
        return dataclasses.replace(self, **changes)

    def live_change(self, **changes: Any) -> SessionOptions:
        """A copy with ``changes`` to live options only (`LIVE_OPTIONS`); a change to any other
        option is a `ValueError` (it shapes a session: memory, regions, encodings)."""
        options = self.replace(**changes)  # unknown names and bad values: ValueError
        fixed = sorted(name for name in set(changes) - LIVE_OPTIONS)
        if any(getattr(options, name) != getattr(self, name) for name in fixed):
            raise ValueError(
                f"{', '.join(fixed)} cannot change in a session (it shapes the memory, regions "
                f"or encodings): start a new session; live options are {sorted(LIVE_OPTIONS)}"
            )
        return options

    def resolved(self, profile: ModelProfile, axis_kind: str | None = None) -> SessionOptions:
        """These options with every ``None`` replaced by ``profile``'s default; ``axis_kind``
        ("T", "Z" or None when unknown) picks the motion and contiguity defaults."""
        if axis_kind is not None and axis_kind not in AXIS_KINDS:
            raise ValueError(f"axis_kind must be one of {AXIS_KINDS} or None, got {axis_kind!r}")
        return dataclasses.replace(
            self,
            memory=MemoryMode(profile.memory) if self.memory is None else self.memory,
            connected=profile.connected if self.connected is None else self.connected,
            motion=profile.follows_motion(axis_kind) if self.motion is None else self.motion,
            flips=profile.flips if self.flips is None else self.flips,
            non_overlap=profile.non_overlap if self.non_overlap is None else self.non_overlap,
            ends_once=(profile.ends_once(axis_kind) if self.ends_once is None else self.ends_once),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the memory mode as its string), e.g. for a run log."""
        values = dataclasses.asdict(self)
        values["memory"] = None if self.memory is None else self.memory.value
        return values


def _check_flag(name: str, value: Any, optional: bool) -> None:
    if isinstance(value, bool) or (optional and value is None):
        return
    accepted = "True, False or None (the model's default)" if optional else "True or False"
    raise ValueError(f"{name} must be {accepted}, got {value!r}")
