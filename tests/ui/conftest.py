"""Fixtures for the GUI tests: a CI-sized net with random weights and small synthetic stacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_samed2.model import LoadedModel, Preprocessing, build_model, small_config


def _tiny(preprocessing: Preprocessing, temporal_adapter: bool = True) -> LoadedModel:
    torch.manual_seed(0)
    config = small_config()
    return LoadedModel(
        name="test",
        net=build_model(config, temporal_adapter=temporal_adapter),
        preprocessing=preprocessing,
        device=torch.device("cpu"),
        dtype=torch.float32,
        config=config,
        temporal_adapter=temporal_adapter,
    )


@pytest.fixture(scope="session")
def tiny_model() -> LoadedModel:
    """Random weights with a temporal adapter: SAMed-2's profile (selective memory, no nano
    tricks)."""
    return _tiny(Preprocessing(256, None, None, 0.0))


@pytest.fixture(scope="session")
def tiny_sam2_model() -> LoadedModel:
    """Random weights, no adapter: a SAM 2 network's profile (sam2's behaviour)."""
    return _tiny(Preprocessing(256, None, None, 0.0), temporal_adapter=False)


@pytest.fixture(scope="session")
def tiny_nano_model() -> LoadedModel:
    """The same random weights trained-as nano: click seeds and carried masks, nano's profile."""
    return _tiny(Preprocessing(256, None, None, 0.0, click_seed=True, carry_mask=True))


@pytest.fixture(scope="session")
def small_volume() -> np.ndarray:
    from napari_samed2.synthetic import nuclei_volume

    return nuclei_volume(shape=(10, 64, 64), seed=1).image
