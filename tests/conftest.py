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
