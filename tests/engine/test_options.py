"""SessionOptions: one validated object, profile defaults filled in one place."""

import pytest

from napari_samed2.engine import MemoryMode, SessionOptions
from napari_samed2.model import NANO_PROFILE, SAM2_PROFILE


def test_memory_is_an_enum_and_strings_are_accepted():
    assert SessionOptions().memory is None  # the model profile's default
    assert SessionOptions(memory="selective").memory is MemoryMode.SELECTIVE
    assert SessionOptions(memory="sam2").memory is MemoryMode.SAM2
    assert SessionOptions(memory="sam2").memory == "sam2"  # a str enum compares as its value
    with pytest.raises(ValueError, match=r"memory must be one of \('selective', 'sam2'\).*'fifo'"):
        SessionOptions(memory="fifo")


@pytest.mark.parametrize("gate", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_gate_outside_unit_interval_is_refused(gate):
    with pytest.raises(ValueError, match="gate must"):
        SessionOptions(gate=gate)


@pytest.mark.parametrize(
    ("name", "value"), [("zoom", None), ("zoom", 1), ("connected", "yes"), ("flips", 0)]
)
def test_flags_must_be_booleans(name, value):
    with pytest.raises(ValueError, match=f"{name} must be True"):
        SessionOptions(**{name: value})


def test_replace_validates_and_names_unknown_options():
    options = SessionOptions(gate=0.7)
    assert options.replace(zoom=True) == SessionOptions(gate=0.7, zoom=True)
    with pytest.raises(ValueError, match=r"unknown session option\(s\) \['gate_threshold'\]"):
        options.replace(gate_threshold=0.2)
    with pytest.raises(ValueError, match="gate must be in"):
        options.replace(gate=2.0)


def test_resolved_takes_the_profile_defaults_and_keeps_explicit_choices():
    nano_t = SessionOptions().resolved(NANO_PROFILE, "T")
    assert (nano_t.connected, nano_t.motion, nano_t.flips) == (True, True, True)
    nano_z = SessionOptions().resolved(NANO_PROFILE, "Z")
    assert nano_z.motion is False
    assert SessionOptions().resolved(NANO_PROFILE).motion is False  # axis kind unknown
    assert nano_t.memory is MemoryMode.SELECTIVE
    sam2 = SessionOptions().resolved(SAM2_PROFILE, "T")
    assert (sam2.memory, sam2.connected, sam2.motion, sam2.flips) == ("sam2", False, False, False)
    assert SessionOptions(memory="selective").resolved(SAM2_PROFILE).memory == "selective"
    mine = SessionOptions(connected=True, flips=True, motion=True).resolved(SAM2_PROFILE)
    assert (mine.connected, mine.motion, mine.flips) == (True, True, True)
    with pytest.raises(ValueError, match="axis_kind must be one of"):
        SessionOptions().resolved(NANO_PROFILE, "time")


def test_to_dict_has_plain_values():
    assert SessionOptions(memory="sam2").to_dict()["memory"] == "sam2"
    assert SessionOptions().to_dict()["memory"] is None
