"""`load_model` inputs: registry names vs files, and option values checked before any weights."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import logging
import threading

import pytest
import torch

from napari_samed2.model import (
    REGISTRY,
    DeviceUnavailableError,
    InvalidDeviceError,
    UnsupportedPrecisionError,
    load_model,
)
from napari_samed2.model.download import CACHE_ENV
from napari_samed2.model.loader import looks_like_path

# -- a registry name shadowed by a file ----------------------------------------------------------


def test_a_plain_registry_name_means_the_registry_model_and_warns_about_the_file(
    tiny_checkpoint, tmp_path, monkeypatch, caplog
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "samed2-nano").write_bytes(tiny_checkpoint.read_bytes())
    with caplog.at_level(logging.WARNING, logger="napari_samed2"):
        model = load_model("samed2-nano", "cpu", progressbar=False)
    assert model.name == "samed2-nano"
    assert model.source.parent.name == "weights"  # the bundled file, not ./samed2-nano
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "'samed2-nano'" in message and str(tmp_path / "samed2-nano") in message
    assert "using the registry model" in message and "./samed2-nano" in message
    assert warnings[0].name == "napari_samed2.model.loader"


def test_a_path_like_name_means_the_file(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    nano = load_model("samed2-nano", "cpu", progressbar=False)
    torch.save({"model": nano.net.state_dict()}, tmp_path / "samed2-nano")  # a sam2-style .pt
    with caplog.at_level(logging.WARNING, logger="napari_samed2"):
        model = load_model("./samed2-nano", "cpu", preset="samed2-nano")
    assert model.source.resolve() == tmp_path / "samed2-nano"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_registry_name_without_a_shadowing_file_does_not_warn(caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="napari_samed2"):
        load_model("samed2-nano", "cpu", progressbar=False)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("text", "path_like"),
    [
        ("samed2-nano", False),
        ("sam2.1-tiny", False),
        ("./samed2-nano", True),
        ("models/samed2-nano", True),
        ("~/samed2-nano", True),
        ("samed2-nano.safetensors", True),
        ("MedSAM2_latest.PT", True),
        ("checkpoint.pth", True),
    ],
)
def test_what_counts_as_a_path(text, path_like):
    assert looks_like_path(text) is path_like


def test_a_missing_path_like_file_is_a_file_not_found_error(tmp_path):
    missing = tmp_path / "gone.safetensors"
    with pytest.raises(FileNotFoundError, match="gone.safetensors"):
        load_model(str(missing), "cpu")


def test_log_names_the_loaded_model_its_source_device_and_dtype(caplog):
    with caplog.at_level(logging.INFO, logger="napari_samed2"):
        model = load_model("samed2-nano", "cpu", progressbar=False)
    loads = [r for r in caplog.records if r.name == "napari_samed2.model.loader"]
    assert [r.levelno for r in loads] == [logging.INFO]
    message = loads[0].getMessage()
    assert "samed2-nano" in message and str(model.source) in message
    assert "on cpu" in message and "float32" in message


# -- precision and device are checked before any weights are touched -----------------------------


@pytest.fixture
def served_model(tmp_path, tiny_checkpoint, monkeypatch):
    """A registry entry whose weights a real local HTTP server serves; requests are counted."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "tiny.safetensors").write_bytes(tiny_checkpoint.read_bytes())
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    spec = dataclasses.replace(
        REGISTRY["sam2.1-tiny"],
        name="served-tiny",
        filename="tiny.safetensors",
        url=f"http://127.0.0.1:{server.server_address[1]}/tiny.safetensors",
        size_bytes=tiny_checkpoint.stat().st_size,
        sha256=None,
    )
    monkeypatch.setitem(REGISTRY, "served-tiny", spec)
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    yield requests, cache
    server.shutdown()
    server.server_close()


def _cached_files(cache):
    return sorted(p.name for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


@pytest.mark.parametrize("precision", ["fp16", "FP32", "float32", 16])
def test_a_bad_precision_fails_before_the_download(served_model, precision):
    requests, cache = served_model
    with pytest.raises(UnsupportedPrecisionError) as caught:
        load_model("served-tiny", "cpu", precision=precision, progressbar=False)
    message = str(caught.value)
    assert repr(precision) in message and "'fp32'" in message and "'bf16'" in message
    assert isinstance(caught.value, ValueError)
    assert requests == [] and _cached_files(cache) == []
    # The same call with an accepted value downloads and loads: the route was live.
    model = load_model("served-tiny", "cpu", precision="bf16", progressbar=False)
    assert model.dtype == torch.bfloat16 and len(requests) == 1


@pytest.mark.parametrize("device", ["gpu", "banana", "cuda:x", "meta"])
def test_a_bad_device_name_fails_before_the_download(served_model, device):
    requests, cache = served_model
    with pytest.raises(InvalidDeviceError) as caught:
        load_model("served-tiny", device, progressbar=False)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, DeviceUnavailableError)  # what callers caught before
    assert repr(device) in str(caught.value) and "'cpu'" in str(caught.value)
    assert requests == [] and _cached_files(cache) == []


def test_a_bad_precision_fails_before_a_local_file_is_read(tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UnsupportedPrecisionError, match="'fp8'"):
        load_model(broken, "cpu", precision="fp8")
