"""Shared fixtures: small nets built here (weights cannot be downloaded on CI)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_config():
    from napari_samed2.model import small_config

    return small_config()
