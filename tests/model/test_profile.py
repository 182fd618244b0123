"""Model profiles: nano's tricks belong to nano-style checkpoints; others get sam2's behaviour."""

import pytest

from napari_samed2.model import (
    DEFAULT_MODEL,
    NANO_PROFILE,
    REGISTRY,
    SAM2_PROFILE,
    SAMED2_PROFILE,
    ModelProfile,
    Preprocessing,
    profile_for,
)


def _profile(name: str):
    spec = REGISTRY[name]
    return profile_for(spec.preprocessing, spec.temporal_adapter)


def test_registry_models_get_the_profile_measured_for_them():
    assert _profile(DEFAULT_MODEL) == NANO_PROFILE
    assert _profile("samed2") == SAMED2_PROFILE and SAMED2_PROFILE.memory == "selective"
    for name in ("medsam2", "sam2.1-tiny", "sam2-large"):
        assert _profile(name) == SAM2_PROFILE and SAM2_PROFILE.memory == "sam2", name
    for name in ("samed2", "medsam2", "sam2.1-tiny"):
        profile = _profile(name)
        assert not (profile.flips or profile.connected or profile.motion_axes), name


def test_a_checkpoint_trained_with_one_trick_keeps_only_that_one():
    profile = profile_for(Preprocessing(256, None, None, 0.0, carry_mask=True))
    assert (profile.carry_mask, profile.click_seed, profile.flips, profile.connected) == (
        True,
        False,
        False,
        False,
    )


def test_motion_follows_only_on_the_profiles_axes_and_only_with_carried_masks():
    assert NANO_PROFILE.follows_motion("T") and not NANO_PROFILE.follows_motion("Z")
    assert not NANO_PROFILE.follows_motion(None)
    assert not ModelProfile("x", motion_axes=("T",)).follows_motion("T")  # nothing carried
    with pytest.raises(ValueError, match="motion_axes must hold axis kinds"):
        ModelProfile("x", motion_axes=("time",))
    with pytest.raises(ValueError, match="memory must be one of"):
        ModelProfile("x", memory="fifo")
