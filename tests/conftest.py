"""Shared fixtures: small nets built here (weights cannot be downloaded on CI)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_config():
    from napari_samed2.model import small_config

    return small_config()


@pytest.fixture(autouse=True)
def feature_cache_folder(tmp_path_factory, monkeypatch):
    """Every test gets its own on-disk feature cache (never the user's): sessions write their
    encoded frames there, as they do by default."""
    folder = tmp_path_factory.mktemp("features")
    monkeypatch.setenv("NAPARI_SAMED2_FEATURES", str(folder))
    return folder


@pytest.fixture(scope="session", autouse=True)
def exact_precision_by_default():
    """Tests compare numbers computed in fp32: load_model's CPU default ("auto", which picks
    bf16 on CPUs with bf16 units and writes its measurement to the user's cache) is pinned to
    fp32 here. tests/model/test_precision.py checks "auto" and the default itself."""
    from napari_samed2.model.device import DEFAULT_PRECISION

    patch = pytest.MonkeyPatch()
    patch.setitem(DEFAULT_PRECISION, "cpu", "fp32")
    yield
    patch.undo()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_config):
    """A checkpoint of the small net (random weights, temporal adapter, 256 px) on disk."""
    from napari_samed2.model import Preprocessing, build_model, save_checkpoint

    torch.manual_seed(0)
    net = build_model(tiny_config, temporal_adapter=True)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    return save_checkpoint(
        path,
        net,
        config=tiny_config,
        temporal_adapter=True,
        preprocessing=Preprocessing(256, None, None, 0.0),
        name="tiny",
    )
