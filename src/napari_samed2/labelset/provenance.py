"""Provenance of label-set entries: when (UTC), who (the OS user), and which model weights."""

from __future__ import annotations

import datetime
import getpass
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
# (resolved path, size, mtime_ns) -> sha256: importing 200 frames of one stack by reference
# hashes the stack once, not 200 times.
_sha_cache: dict[tuple[str, int, int], str] = {}


def utc_now() -> str:
    """The current time, ISO 8601 in UTC with seconds (``2025-01-31T14:02:11Z``)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return now.isoformat().replace("+00:00", "Z")


def os_user() -> str | None:
    """The OS user's login name, or None where the OS has none to give (a container
    without a passwd entry): the entry is still written, with ``"user": null``."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError) as error:
        logger.debug("no OS user name: %s", error)
        return None


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, hex (cached while the file's size and time are the same)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _sha_cache:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
        _sha_cache[key] = digest.hexdigest()
    return _sha_cache[key]


def model_record(
    name: str, weights: str | os.PathLike | None = None, sha256: str | None = None
) -> dict[str, Any]:
    """An object's model provenance: ``{"name": ..., "sha256": ...}``.

    ``sha256`` is taken as given (e.g. the registry's); else computed from ``weights`` when
    that file is given; else None.
    """
    if sha256 is None and weights is not None:
        sha256 = file_sha256(weights)
    return {"name": str(name), "sha256": sha256}


def writer_record() -> dict[str, Any]:
    """Who wrote an entry: the time (UTC), the OS user and this package's version."""
    from .. import __version__

    return {"time": utc_now(), "user": os_user(), "writer": f"napari-samed2 {__version__}"}
