import dataclasses
import functools
import hashlib
import http.server
import logging
import socket
import threading

import pytest

from napari_samed2.model import REGISTRY, DownloadError, fetch_weights
from napari_samed2.model.download import CACHE_ENV, cache_dir

PAYLOAD = b"weights " * 4096


@pytest.fixture
def file_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/served."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "model.pt").write_bytes(PAYLOAD)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _spec(url, **changes):
    base = REGISTRY["sam2.1-tiny"]
    values = {"url": url, "filename": "model.pt", "size_bytes": len(PAYLOAD), "sha256": None}
    return dataclasses.replace(base, **{**values, **changes})


def test_download_records_checksum_and_verifies_later_loads(file_server, tmp_path):
    cache = tmp_path / "cache"
    path = fetch_weights(_spec(f"{file_server}/model.pt"), cache, progressbar=False)
    assert path.read_bytes() == PAYLOAD
    recorded = (cache / "checksums.json").read_text()
    assert hashlib.sha256(PAYLOAD).hexdigest() in recorded
    # A second call uses the cache (works with the server gone) ...
    assert fetch_weights(_spec("http://127.0.0.1:9/model.pt"), cache) == path
    # ... and a file that changed on disk is caught.
    path.write_bytes(PAYLOAD[:-1] + b"X")
    with pytest.raises(DownloadError, match="changed since it was downloaded"):
        fetch_weights(_spec(f"{file_server}/model.pt"), cache)


def test_wrong_checksum_is_an_error_and_leaves_no_file(file_server, tmp_path):
    cache = tmp_path / "cache"
    spec = _spec(f"{file_server}/model.pt", sha256="0" * 64)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_weights(spec, cache, progressbar=False)
    assert not any(p.name.startswith("model") for p in cache.glob("*"))


def test_wrong_size_is_an_error_and_the_file_is_removed(file_server, tmp_path):
    cache = tmp_path / "cache"
    spec = _spec(f"{file_server}/model.pt", size_bytes=len(PAYLOAD) + 1)
    with pytest.raises(DownloadError, match=f"expected {len(PAYLOAD) + 1}"):
        fetch_weights(spec, cache, progressbar=False)
    assert not (cache / "model.pt").exists()


def test_server_down_is_a_clear_offline_error(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = _spec(f"http://127.0.0.1:{port}/model.pt")
    with pytest.raises(DownloadError, match="offline") as raised:
        fetch_weights(spec, tmp_path / "cache", progressbar=False)
    assert str(tmp_path / "cache" / "model.pt") in str(raised.value)


def test_missing_file_on_server_is_an_error(file_server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        fetch_weights(_spec(f"{file_server}/absent.pt"), tmp_path / "cache", progressbar=False)


def test_manual_download_entry_explains_where_to_put_the_file(tmp_path):
    with pytest.raises(DownloadError, match="Google Drive") as raised:
        fetch_weights(REGISTRY["samed2"], tmp_path)
    assert str(tmp_path / "latest_epoch_0217.pth") in str(raised.value)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"


def test_a_download_is_logged_with_its_url_size_and_sha256(file_server, tmp_path, caplog):
    url = f"{file_server}/model.pt"
    with caplog.at_level(logging.INFO, logger="napari_samed2"):
        path = fetch_weights(_spec(url), tmp_path / "cache", progressbar=False)
    messages = [r.getMessage() for r in caplog.records if r.name == "napari_samed2.model.download"]
    assert messages[0].startswith(f"downloading sam2.1-tiny weights from {url}")
    sha256 = hashlib.sha256(PAYLOAD).hexdigest()
    assert messages[-1] == f"downloaded {url}: {path}, {len(PAYLOAD)} bytes, sha256 {sha256}"
