"""Model profiles: what a model does beyond sam2's own predictor, and the option defaults
measured for it.

The tricks tuned for the embedded nano model (click seeds, carried masks, flip averaging,
temporal connectivity, following motion on time axes) are properties of that model, not of
every session: SAM 2, SAMed-2 and MedSAM2 networks get ``SAM2_PROFILE``, sam2's behaviour.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .registry import Preprocessing

AXIS_KINDS = ("T", "Z")
MEMORY_DEFAULTS = ("selective", "sam2")  # engine.options.MemoryMode's values


@dataclass(frozen=True)
class ModelProfile:
    """The behaviour a model was trained or measured with.

    Attributes
    ----------
    name : str
        What the profile is called in messages and the widget ("sam2", "samed2", "nano").
    memory : {"selective", "sam2"}
        Default memory (`SessionOptions.memory`): SAMed-2's selective memory for models trained
        with it, sam2's own for SAM 2 and MedSAM2 networks.
    click_seed, carry_mask : bool
        How the weights were trained (`Preprocessing`): clicks and boxes also painted into the
        mask prompt; tracked frames get the neighbour's mask logits as mask prompt. Not options.
    flips : bool
        Default of flip averaging on single 2-D images (`SessionOptions.flips`).
    non_overlap : bool
        Default of one object per pixel in a session's masks (`SessionOptions.non_overlap`);
        sam2's predictor returns each object's mask as decoded.
    connected : bool
        Default of temporal connectivity of propagated masks (`SessionOptions.connected`).
    motion_axes : tuple of str
        Axis kinds ("T" time, "Z" depth) on which carried masks follow motion by default
        (`SessionOptions.motion`); only meaningful with ``carry_mask``.
    ends_once_axes : tuple of str
        Axis kinds on which objects end once by default (`SessionOptions.ends_once`): a
        frame beyond an empty one, away from the prompts, is absent.
    """

    name: str
    memory: str = "sam2"
    click_seed: bool = False
    carry_mask: bool = False
    flips: bool = False
    non_overlap: bool = False
    connected: bool = False
    motion_axes: tuple[str, ...] = ()
    ends_once_axes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.memory not in MEMORY_DEFAULTS:
            raise ValueError(f"memory must be one of {MEMORY_DEFAULTS}, got {self.memory!r}")
        for name in ("motion_axes", "ends_once_axes"):
            unknown = [kind for kind in getattr(self, name) if kind not in AXIS_KINDS]
            if unknown:
                raise ValueError(f"{name} must hold axis kinds {AXIS_KINDS}, got {unknown!r}")

    def follows_motion(self, axis_kind: str | None) -> bool:
        """Whether carried masks follow motion by default along an axis of ``axis_kind``
        ("T", "Z" or None when unknown)."""
        return self.carry_mask and axis_kind in self.motion_axes

    def ends_once(self, axis_kind: str | None) -> bool:
        """Whether objects end once by default along an axis of ``axis_kind`` ("T", "Z" or
        None when unknown)."""
        return axis_kind in self.ends_once_axes


SAM2_PROFILE = ModelProfile("sam2")

# Measured for samed2-nano on the held-out suites (docs/models.md): flip averaging 2-D
# 0.833 -> 0.850, following motion on time-lapses, connectivity against islands on look-alikes.
NANO_PROFILE = ModelProfile(
    "nano",
    memory="selective",
    click_seed=True,
    carry_mask=True,
    flips=True,
    non_overlap=True,
    connected=True,
    motion_axes=("T",),
    ends_once_axes=("Z",),
)
SAMED2_PROFILE = ModelProfile("samed2", memory="selective")


def profile_for(preprocessing: Preprocessing, temporal_adapter: bool = False) -> ModelProfile:
    """The profile of a checkpoint with ``preprocessing`` (and a temporal adapter or not).

    Weights trained by this project's loop with carried masks and click seeds (samed2-nano and
    models fine-tuned from it) get the nano profile, for which its tricks were measured.
    SAMed-2 networks (a temporal adapter) get its selective memory and nothing else; SAM 2 and
    MedSAM2 networks get sam2's behaviour. A click seed or carried masks a checkpoint was trained
    with are kept whatever the profile.
    """
    if preprocessing.click_seed and preprocessing.carry_mask:
        return NANO_PROFILE
    base = SAMED2_PROFILE if temporal_adapter else SAM2_PROFILE
    return dataclasses.replace(
        base, click_seed=bool(preprocessing.click_seed), carry_mask=bool(preprocessing.carry_mask)
    )
