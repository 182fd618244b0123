"""Model profiles: nano's tricks belong to nano-style checkpoints; others get sam2's behaviour."""

import pytest

from napari_samed2.model import (
    DEFAULT_MODEL,
    NANO_PROFILE,
    REGISTRY,
    SAM2_PROFILE,
    ModelProfile,
    Preprocessing,
    profile_for,
)


def test_registry_models_get_the_profile_measured_for_them():
    assert profile_for(REGISTRY[DEFAULT_MODEL].preprocessing) == NANO_PROFILE
    for name in ("samed2", "medsam2", "sam2.1-tiny", "sam2-large"):
        profile = profile_for(REGISTRY[name].preprocessing)
        assert profile == SAM2_PROFILE, name
        assert not (profile.flips or profile.connected or profile.motion_axes)


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
