import pytest
import torch

from napari_samed2.model import (
    DEFAULT_PRECISION,
    DeviceUnavailableError,
    available_devices,
    compute_dtype,
    resolve_device,
)


def test_auto_picks_the_best_available_device():
    assert resolve_device(None).type == available_devices()[0]
    assert resolve_device("auto") == resolve_device(None)
    assert available_devices()[-1] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device_by_name_is_an_error_not_a_fallback():
    with pytest.raises(DeviceUnavailableError, match="'cuda' is not available"):
        resolve_device("cuda")


def test_nonsense_device_name_is_an_error():
    with pytest.raises(DeviceUnavailableError, match="banana"):
        resolve_device("banana")


def test_one_dtype_per_device(monkeypatch):
    monkeypatch.setitem(DEFAULT_PRECISION, "cpu", "auto")  # tests/conftest.py pins fp32
    assert compute_dtype(torch.device("cpu"), "fp32") == torch.float32
    assert compute_dtype(torch.device("cuda")) == torch.bfloat16
    assert compute_dtype(torch.device("mps")) == torch.float32
    assert compute_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="measuring"):  # CPU's default is "auto"
        compute_dtype(torch.device("cpu"))
    with pytest.raises(ValueError, match="precision"):
        compute_dtype(torch.device("cpu"), "fp8")
