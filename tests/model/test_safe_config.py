"""A network config from a file runs no code and allocates nothing unbounded.

Every crafted config here would create a marker file if hydra honoured it (``builtins.open``
of a path in ``tmp_path`` with mode ``"w"``); each test checks the refusal names the key and
that the marker is never created.
"""

from importlib import resources
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from napari_samed2.model import (
    SAM2_CONFIG_FILES,
    CheckpointError,
    CheckpointNotFoundError,
    DownloadError,
    ModelError,
    UnknownModelError,
    UnsafeCheckpointError,
    build_model,
    load_model,
    nano_config,
    read_checkpoint,
    sam2_config,
    small_config,
)
from napari_samed2.model.safe_config import ALLOWED_TARGETS, SAM2_CONFIG_TARGETS, SIZE_LIMITS
from tests.crafted import NANO, nano_with, opens, write_checkpoint

# -- the checks themselves, through build_model (every route ends there) ------------------

# Places where the old code did instantiate the node (creating the marker).
CODE_AT = [
    "memory_encoder",
    "image_encoder.neck.position_encoding",
    "image_encoder.trunk.drop_path_rate",  # a config nested inside the trunk
    "memory_attention.layer.self_attention",
    "image_encoder.neck.fpn_top_down_levels[1]",  # inside a list
]


@pytest.mark.parametrize("where", CODE_AT)
def test_a_target_outside_the_allow_list_is_refused_at_any_depth(tmp_path, where):
    marker = tmp_path / "ran"
    with pytest.raises(UnsafeCheckpointError) as raised:
        build_model(nano_with(where, opens(marker)), temporal_adapter=True)
    assert f"{where}._target_ is 'builtins.open'" in str(raised.value)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match=r"image_encoder\.trunk\._target_ is 'builtins"):
        build_model(nano_with("image_encoder.trunk", opens(marker)))
    assert "sam2.modeling.sam2_base.SAM2Base" in str(raised.value)  # what is accepted
    assert not marker.exists()


def test_os_system_is_refused_too(tmp_path):
    marker = tmp_path / "ran"
    node = {"_target_": "os.system", "_args_": [f"touch {marker}"]}
    with pytest.raises(UnsafeCheckpointError, match=r"memory_encoder\._target_ is 'os\.system'"):
        build_model(nano_with("memory_encoder", node))
    assert not marker.exists()


@pytest.mark.parametrize("special", ["_partial_", "_args_", "_recursive_", "_convert_"])
def test_hydra_special_keys_are_refused(special):
    config = nano_config()
    config["image_encoder"]["trunk"][special] = True if special != "_args_" else [1]
    with pytest.raises(UnsafeCheckpointError, match=rf"image_encoder\.trunk\.{special} is a hydra"):
        build_model(config, temporal_adapter=True)


def test_resolvers_and_interpolations_are_refused_and_never_evaluated(tmp_path):
    marker = tmp_path / "ran"
    OmegaConf.register_new_resolver(
        "samed2_test_touch", lambda name: Path(name).touch() or 4, replace=True
    )
    for text in (f"${{samed2_test_touch:{marker}}}", "${oc.env:HOME}", "${image_size}"):
        config = nano_with("memory_attention.num_layers", text)
        with pytest.raises(UnsafeCheckpointError, match=r"memory_attention\.num_layers is '\$\{"):
            build_model(config, temporal_adapter=True)
        # the same config as an OmegaConf node (as OmegaConf.load gives) is not resolved first
        with pytest.raises(UnsafeCheckpointError, match="interpolations and resolvers"):
            build_model(OmegaConf.create(config), temporal_adapter=True)
        # nor an OmegaConf node inside a plain dict
        config["memory_attention"] = OmegaConf.create(config["memory_attention"])
        with pytest.raises(UnsafeCheckpointError, match="interpolations and resolvers"):
            build_model(config, temporal_adapter=True)
    assert not marker.exists()


def test_a_config_file_loaded_with_omegaconf_is_checked(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(OmegaConf.to_yaml({"model": nano_with("memory_encoder", opens(marker))}))
    with pytest.raises(UnsafeCheckpointError, match=r"model\.memory_encoder\._target_"):
        build_model(OmegaConf.load(path), temporal_adapter=True)
    assert not marker.exists()


def test_build_model_target_argument_is_allow_listed(tmp_path):
    with pytest.raises(UnsafeCheckpointError, match="target='builtins.open'"):
        build_model(small_config(), target="builtins.open")


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("image_size", 10**6),
        ("image_encoder.trunk.embed_dim", 10**9),
        ("image_encoder.trunk.num_heads", 10**4),
        ("image_encoder.trunk.stages", [1, 2, 10**6, 1]),
        ("image_encoder.trunk.window_spec", [8, 4, -1, 4]),
        ("image_encoder.neck.d_model", 10**7),
        ("memory_attention.num_layers", 10**5),
        ("memory_attention.layer.dim_feedforward", 10**8),
        ("memory_attention.layer.self_attention.feat_sizes", [10**5, 10**5]),
        ("memory_encoder.fuser.layer.dim", 10**6),
        ("num_maskmem", 1000),
        ("image_encoder.trunk.dim_mul", 1e6),
        ("num_maskmem", float("nan")),
    ],
)
def test_sizes_beyond_the_limits_are_refused_naming_key_value_and_limit(where, value):
    key = where.rsplit(".", 1)[-1]
    with pytest.raises(UnsafeCheckpointError) as raised:
        build_model(nano_with(where, value), temporal_adapter=True)
    message = str(raised.value)
    assert f"{where} is {value!r}" in message
    limit = SIZE_LIMITS.get(key, 4)
    assert f"0 to {limit:g}" in message


def test_many_blocks_of_a_wide_trunk_are_refused_as_a_whole():
    config = nano_config()
    config["image_encoder"]["trunk"].update(embed_dim=1024, stages=[2, 2, 100, 2])
    with pytest.raises(UnsafeCheckpointError, match=r"image_encoder\.trunk .* weights; the limit"):
        build_model(config, temporal_adapter=True)


def test_the_allow_list_is_exactly_what_sam2s_shipped_configs_use():
    shipped = set()
    for relative in SAM2_CONFIG_FILES.values():
        text = resources.files("sam2").joinpath(relative).read_text()
        shipped |= {line.split(":", 1)[1].strip() for line in text.splitlines()
                    if line.strip().startswith("_target_:")}  # fmt: skip
    assert shipped == set(SAM2_CONFIG_TARGETS)
    assert ALLOWED_TARGETS - SAM2_CONFIG_TARGETS == {
        "napari_samed2.model.temporal_adapter.TemporalHiera",
        "sam2.sam2_video_predictor.SAM2VideoPredictor",
    }


@pytest.mark.parametrize("name", sorted(SAM2_CONFIG_FILES))
def test_every_sam2_config_passes_at_2048_px(name):
    from napari_samed2.model.safe_config import check_network_config

    check_network_config(sam2_config(name, image_size=2048))  # no error
    check_network_config({"model": sam2_config(name)})


# -- route: a safetensors checkpoint's metadata ----------------------------------------------


@pytest.mark.parametrize("where", ["memory_encoder", "image_encoder.trunk.drop_path_rate"])
def test_a_crafted_checkpoint_is_refused_naming_the_file_and_the_key(tmp_path, where):
    marker = tmp_path / "ran"
    path = write_checkpoint(tmp_path / "shared.safetensors", nano_with(where, opens(marker)))
    for read in (read_checkpoint, lambda p: load_model(p, device="cpu")):
        with pytest.raises(UnsafeCheckpointError) as raised:
            read(path)
        assert str(path) in str(raised.value)
        assert f"{where}._target_ is 'builtins.open'" in str(raised.value)
    assert not marker.exists()


def test_a_crafted_checkpoint_under_a_registry_filename_is_refused(tmp_path, monkeypatch):
    # The bundled entry re-reads the architecture from the file's metadata.
    marker = tmp_path / "ran"
    path = write_checkpoint(tmp_path / "x.safetensors", nano_with("memory_encoder", opens(marker)))
    with pytest.raises(UnsafeCheckpointError, match=r"memory_encoder\._target_"):
        load_model(path, device="cpu", preset="samed2-nano")
    assert not marker.exists()


def test_bad_preprocessing_metadata_is_a_checkpoint_error(tmp_path):
    path = write_checkpoint(tmp_path / "p.safetensors", nano_config(), preprocessing=[1, 2])
    with pytest.raises(CheckpointError, match="preprocessing"):
        load_model(path, device="cpu")


def test_preprocessing_image_size_from_a_file_is_bounded(tmp_path):
    preprocessing = {**NANO.preprocessing.to_dict(), "image_size": 10**7}
    path = write_checkpoint(tmp_path / "p.safetensors", nano_config(), preprocessing)
    with pytest.raises(
        UnsafeCheckpointError, match=r"preprocessing\.image_size is 10000000; accepted: 1 to 8192"
    ):
        load_model(path, device="cpu")


def test_legit_configs_and_files_still_load(tmp_path):
    nano = load_model("samed2-nano", device="cpu")
    assert nano.temporal_adapter and nano.image_size == 256
    path = write_checkpoint(tmp_path / "nano-copy.safetensors", nano_config())
    copy = load_model(path, device="cpu")
    for key, value in nano.net.state_dict().items():
        assert torch.equal(copy.net.state_dict()[key], value), key
    build_model(small_config(num_maskmem=64, image_size=2048))  # at the limits: builds


# -- error classes derive from the built-ins that describe them ------------------------------


def test_model_errors_are_the_built_ins_callers_catch(tmp_path):
    with pytest.raises(UnknownModelError) as raised:
        load_model("no-such-model")
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, KeyError)
    assert str(raised.value).startswith("'no-such-model' is neither a known model")
    with pytest.raises(FileNotFoundError) as missing:
        read_checkpoint(tmp_path / "absent.pt")
    assert isinstance(missing.value, CheckpointNotFoundError)
    assert isinstance(missing.value, CheckpointError)
    assert "absent.pt" in str(missing.value)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 40)
    with pytest.raises(ValueError, match="broken.safetensors"):
        read_checkpoint(broken)
    assert issubclass(UnsafeCheckpointError, ValueError)
    assert issubclass(DownloadError, OSError) and issubclass(DownloadError, ModelError)
