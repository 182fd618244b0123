"""Fetching checkpoint files: cache, progress, checksums, and clear offline errors.

Publishers rarely give checksums. Where the registry has none, the sha256 of the first download
is recorded in ``checksums.json`` in the cache and every later load is verified against it, so
a file that changes on disk (truncated copy, bit rot, tampering) is caught.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from importlib import resources
from pathlib import Path

import pooch
import requests

from ..atomic import write_text_atomic
from .errors import DownloadError
from .registry import ModelSpec

logger = logging.getLogger(__name__)

CACHE_ENV = "NAPARI_SAMED2_CACHE"
CHECKSUM_FILE = "checksums.json"


def cache_dir() -> Path:
    """Where downloaded weights live: ``$NAPARI_SAMED2_CACHE`` or the user cache dir."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path(pooch.os_cache("napari-samed2"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_path(spec: ModelSpec, directory: Path | None = None) -> Path | None:
    """Path of ``spec``'s weights if they are available without downloading, else None."""
    if spec.bundled:
        path = Path(str(resources.files("napari_samed2").joinpath(spec.bundled)))
        return path if path.is_file() else None
    if spec.filename is None:
        return None
    path = (directory or cache_dir()) / spec.filename
    return path if path.is_file() else None


def fetch_weights(spec: ModelSpec, directory: Path | None = None, progressbar: bool = True) -> Path:
    """Return a verified local path to ``spec``'s weights, downloading them if needed.

    Raises
    ------
    DownloadError
        Offline or server error, wrong size, wrong checksum (the partial or bad file is
        removed), a manual-download entry whose file is not in place, or a bundled file
        missing from the install.
    """
    directory = Path(directory) if directory is not None else cache_dir()
    if spec.bundled:
        path = cached_path(spec)
        if path is None:
            raise DownloadError(
                f"the embedded model {spec.name!r} is missing from this installation "
                f"(expected napari_samed2/{spec.bundled}); reinstall napari-samed2"
            )
        return path
    if spec.filename is None:
        raise DownloadError(f"model {spec.name!r} has no weights file")
    path = directory / spec.filename
    if path.is_file():
        verify_cached(spec, path)
        return path
    if spec.url is None:
        instructions = (spec.manual_download or "Download it by hand.").format(path=path)
        raise DownloadError(f"weights for {spec.name!r} are not in the cache. {instructions}")
    return _download(spec, directory, progressbar)


def _download(spec: ModelSpec, directory: Path, progressbar: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s weights from %s into %s", spec.name, spec.url, directory)
    known_hash = f"sha256:{spec.sha256}" if spec.sha256 else None
    try:
        # pooch downloads into a temporary file and moves it into place only when the
        # checksum matches, so a failed or interrupted download leaves nothing behind.
        fetched = pooch.retrieve(
            spec.url,
            known_hash=known_hash,
            fname=spec.filename,
            path=directory,
            progressbar=progressbar,
        )
    except requests.exceptions.ConnectionError as error:
        raise DownloadError(
            f"could not reach {spec.url} to download {spec.name!r} (offline?). Download the "
            f"file by other means and place it at {directory / spec.filename}"
        ) from error
    except requests.exceptions.HTTPError as error:
        raise DownloadError(f"server refused {spec.url}: {error}") from error
    except ValueError as error:  # pooch: hash mismatch
        raise DownloadError(f"checksum mismatch for {spec.url}: {error}") from error
    path = Path(fetched)
    size = path.stat().st_size
    if spec.size_bytes is not None and size != spec.size_bytes:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{spec.url} gave {size} bytes, expected {spec.size_bytes}; the file was removed"
        )
    sha256 = file_sha256(path)
    _record_checksum(directory, spec.filename, sha256)
    logger.info("downloaded %s: %s, %d bytes, sha256 %s", spec.url, path, size, sha256)
    return path


def verify_cached(spec: ModelSpec, path: Path) -> None:
    """Check a cached file against the publisher's or the recorded sha256 and size."""
    size = path.stat().st_size
    if spec.size_bytes is not None and size != spec.size_bytes:
        raise DownloadError(
            f"{path} has {size} bytes, expected {spec.size_bytes}: the file is incomplete or "
            "not the published one; delete it to download it again"
        )
    expected = spec.sha256 or _recorded_checksums(path.parent).get(path.name)
    if expected is None:
        # A manually placed file: remember it now, verify it from now on.
        sha256 = file_sha256(path)
        _record_checksum(path.parent, path.name, sha256)
        logger.info("recorded sha256 %s of %s (%d bytes) for later checks", sha256, path, size)
        return
    actual = file_sha256(path)
    if actual != expected:
        raise DownloadError(
            f"{path} has sha256 {actual}, expected {expected}: the file changed since it was "
            "downloaded; delete it to download it again"
        )
    logger.debug("verified %s: sha256 %s", path, actual)


def _recorded_checksums(directory: Path) -> dict[str, str]:
    path = directory / CHECKSUM_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _record_checksum(directory: Path, filename: str, sha256: str) -> None:
    records = _recorded_checksums(directory)
    records[filename] = sha256
    write_text_atomic(directory / CHECKSUM_FILE, json.dumps(records, indent=2, sort_keys=True))
