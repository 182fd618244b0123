import os
import pickle
from pathlib import Path

import pytest
import torch

from napari_samed2.model import (
    REGISTRY,
    CheckpointError,
    CheckpointMismatchError,
    Preprocessing,
    UnsafeCheckpointError,
    build_model,
    infer_spec,
    load_model,
    read_checkpoint,
    sam2_config,
    save_checkpoint,
    small_config,
)
from napari_samed2.model.checkpoint import fit_state_dict


class RunsCode:
    """A pickle payload that would create a file when unpickled by plain pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": RunsCode(marker)}, bad)
    # Proof that the file is live: plain unpickling would create the marker.
    with pytest.raises(UnsafeCheckpointError, match="could run code"):
        read_checkpoint(bad)
    with pytest.raises(UnsafeCheckpointError):
        load_model(bad)
    assert not marker.exists()
    # The file really is live: a careless loader would have run it.
    torch.load(bad, weights_only=False)
    assert marker.exists()


def test_plain_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"model": RunsCode(marker)}))
    with pytest.raises(CheckpointError):
        read_checkpoint(bad)
    assert not marker.exists()


def test_corrupt_and_missing_files_are_clear_errors(tmp_path):
    net = build_model(small_config())
    good = tmp_path / "good.pt"
    torch.save({"model": net.state_dict()}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        read_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")
    not_a_state = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_a_state)
    with pytest.raises(CheckpointError, match="no state dict"):
        read_checkpoint(not_a_state)
    broken_st = tmp_path / "broken.safetensors"
    broken_st.write_bytes(b"\x00" * 40)
    with pytest.raises(CheckpointError, match="safetensors"):
        read_checkpoint(broken_st)


def test_strict_fit_names_every_bad_key():
    net = build_model(small_config())
    state = dict(net.state_dict())
    state.pop("maskmem_tpos_enc")
    state.pop("image_encoder.trunk.pos_embed")
    state["some.extra.weight"] = torch.zeros(2)
    state["no_mem_embed"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointMismatchError) as raised:
        fit_state_dict(net, state)
    message = str(raised.value)
    for key in ("maskmem_tpos_enc", "image_encoder.trunk.pos_embed", "some.extra.weight"):
        assert key in message
    assert "no_mem_embed: checkpoint (3, 3)" in message


def test_unused_fusion_weights_are_dropped_by_name():
    torch.manual_seed(0)
    full = build_model(small_config(), temporal_adapter=True, keep_unused_fusion=True)
    lean = build_model(small_config(), temporal_adapter=True)
    report = fit_state_dict(lean, full.state_dict())
    assert report.fits
    assert report.dropped_unused and all(".fancy_fusion." in k for k in report.dropped_unused)
    assert len(report.dropped_unused) == 6 * len(lean.image_encoder.trunk.blocks)
    for key, value in lean.state_dict().items():
        assert torch.equal(value, full.state_dict()[key])


def test_checkpoint_that_does_not_fit_the_preset_is_refused(tmp_path):
    path = tmp_path / "sam2.1_hiera_tiny.pt"  # registry filename, wrong contents
    torch.save({"model": build_model(small_config()).state_dict()}, path)
    with pytest.raises(CheckpointMismatchError, match="shape mismatches"):
        load_model(path)


def test_released_samed2_layout_is_recognised(tmp_path):
    torch.manual_seed(0)
    released = build_model(
        sam2_config("sam2-small"), temporal_adapter=True, keep_unused_fusion=True
    )
    path = tmp_path / "latest_epoch_0217.pth"
    torch.save({"model": released.state_dict()}, path)
    loaded = load_model(path, device="cpu")
    assert loaded.name == "samed2"
    assert loaded.temporal_adapter
    assert loaded.preprocessing == Preprocessing(1024, None, None, 0.5)
    assert len(loaded.report.dropped_unused) == 16 * 6
    key = "image_encoder.trunk.blocks.3.adapter.conv.weight"
    assert torch.equal(loaded.net.state_dict()[key], released.state_dict()[key])
    # The same file under any name is recognised from its keys.
    renamed = tmp_path / "my_model.pt"
    os.replace(path, renamed)
    assert load_model(renamed).name == "samed2"


def test_sam2_versions_and_sizes_are_inferred_from_keys():
    for name in ("sam2.1-tiny", "sam2-small", "sam2.1-base-plus"):
        state = build_model(REGISTRY[name].config()).state_dict()
        assert infer_spec(state).name == name


def test_save_and_load_round_trip_is_self_describing(tmp_path):
    torch.manual_seed(3)
    config = small_config()
    net = build_model(config, temporal_adapter=True)
    prep = Preprocessing(256, None, None, 0.0)
    path = save_checkpoint(
        tmp_path / "mine.safetensors",
        net,
        config=config,
        temporal_adapter=True,
        preprocessing=prep,
        name="mine",
        extra={"parent": "samed2-nano"},
    )
    loaded = load_model(path, device="cpu")
    assert loaded.name == "mine" and loaded.temporal_adapter and loaded.preprocessing == prep
    images = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        want = net.image_encoder(images)["vision_features"]
        got = loaded.net.image_encoder(images)["vision_features"]
    assert torch.equal(want, got)
    assert read_checkpoint(path).metadata["parent"] == "samed2-nano"
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        save_checkpoint(
            path, net, config=config, temporal_adapter=True, preprocessing=prep, name="x"
        )


def test_unknown_name_lists_known_models():
    with pytest.raises(KeyError, match="sam2.1-tiny"):
        load_model("no-such-model")
