"""Atomic file writes: readers see the old file or the new one, never a half-written one."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

# Directory fsync is a POSIX notion; some file systems (network mounts) answer these errnos
# to mean "not supported here", which must not turn a completed write into a failure.
_DIRECTORY_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EISDIR}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it over ``path``.

    The new file gets the permissions a plain ``open(path, "w")`` would give: an existing
    ``path`` keeps its mode, a new one gets ``0o666`` less the umask. Its content is flushed
    to disk before it replaces ``path``, and on POSIX the directory entry is flushed after.
    On any error (a full disk included) the temporary file is removed and ``path`` keeps its
    previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_beside(path)
    try:
        yield tmp_path
        # A writable handle: Windows refuses to flush a read-only one.
        with open(tmp_path, "ab") as written:
            written.flush()
            os.fsync(written.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp_path, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    fsync_directory(path.parent)


def _create_beside(path: Path) -> Path:
    """Create an empty, uniquely named file next to ``path``.

    Created with mode 0o666 so that the kernel applies the umask (and any default ACL of the
    folder) exactly as for a normal write; `tempfile.mkstemp` would give 0o600.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(candidate, flags, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"could not create a temporary file beside {str(path)!r}")


def fsync_directory(directory: str | os.PathLike) -> None:
    """Flush a directory's entries (a file created, renamed or removed in it) to disk.

    POSIX only (Windows has no such call); file systems that cannot do it are skipped.
    """
    if os.name != "posix":
        return
    handle = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(handle)
    except OSError as error:
        if error.errno not in _DIRECTORY_FSYNC_UNSUPPORTED:
            raise
        logger.debug("directory fsync not supported for %s: %s", directory, error)
    finally:
        os.close(handle)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's content to disk (through a writable handle: Windows needs one)."""
    with open(path, "ab") as written:
        os.fsync(written.fileno())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
