"""Fixtures for the GUI tests: a CI-sized net with random weights and small synthetic stacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_samed2.model import LoadedModel, Preprocessing, build_model, small_config


@pytest.fixture(scope="session")
def tiny_model() -> LoadedModel:
    torch.manual_seed(0)
    config = small_config()
    return LoadedModel(
        name="test",
        net=build_model(config, temporal_adapter=True),
        preprocessing=Preprocessing(256, None, None, 0.0),
        device=torch.device("cpu"),
        dtype=torch.float32,
        config=config,
        temporal_adapter=True,
    )


@pytest.fixture(scope="session")
def small_volume() -> np.ndarray:
    from napari_samed2.synthetic import nuclei_volume

    return nuclei_volume(shape=(10, 64, 64), seed=1).image
