"""Atomic writes: the mode a plain write gives, flushed handles, and failures that keep the file."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from napari_samed2.atomic import atomic_path, write_bytes_atomic, write_text_atomic

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX modes, fcntl and /dev/full")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _current_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_a_new_file_gets_the_mode_of_a_plain_write(tmp_path, umask_027):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = tmp_path / "atomic.txt"
    write_text_atomic(atomic, "x")
    assert _mode(atomic) == _mode(plain) == 0o666 & ~0o027 == 0o640


def test_a_new_file_follows_the_umask_of_the_process(tmp_path):
    atomic = tmp_path / "atomic.bin"
    write_bytes_atomic(atomic, b"x")
    assert _mode(atomic) == 0o666 & ~_current_umask()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o664], ids=oct)
def test_an_existing_file_keeps_its_mode(tmp_path, mode):
    target = tmp_path / "shared.json"
    target.write_text("old")
    os.chmod(target, mode)
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert _mode(target) == mode


def test_an_error_inside_the_block_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "labels.npy"
    old = bytes(range(256)) * 4
    target.write_bytes(old)
    with pytest.raises(RuntimeError, match="writer broke"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("writer broke")
    assert target.read_bytes() == old
    assert _leftovers(tmp_path) == []


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "weights.bin"
    old = b"previous content"
    target.write_bytes(old)
    with pytest.raises(OSError) as caught:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"the first part of the new file")
            # The writer then meets a full disk: /dev/full is a device that always is one.
            with open("/dev/full", "wb") as full:
                full.write(b"\0" * 4096)
                full.flush()
    assert caught.value.errno == errno.ENOSPC
    assert target.read_bytes() == old
    assert _leftovers(tmp_path) == []


def test_a_write_over_the_file_size_limit_keeps_the_old_file(tmp_path):
    # A real short write: the kernel refuses bytes beyond RLIMIT_FSIZE (EFBIG), as it refuses
    # bytes beyond the free space of a full disk (ENOSPC).
    target = tmp_path / "labels.tif"
    old = b"old labels" * 10
    target.write_bytes(old)
    script = textwrap.dedent(
        f"""
        import errno, resource, signal
        from napari_samed2.atomic import write_bytes_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            write_bytes_atomic({str(target)!r}, b"n" * 100_000)
        except OSError as error:
            raise SystemExit(0 if error.errno == errno.EFBIG else 3)
        raise SystemExit(4)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == old
    assert _leftovers(tmp_path) == []


def test_the_content_is_flushed_through_a_writable_handle_then_the_folder(tmp_path, monkeypatch):
    # Windows refuses to fsync a read-only handle, so the flush must use a writable one; on
    # POSIX the directory entry is flushed after the replace.
    real_fsync = os.fsync
    calls = []

    def recording_fsync(fd):
        info = os.fstat(fd)
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
        calls.append((stat.S_ISDIR(info.st_mode), access, (tmp_path / "out.txt").exists()))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_text_atomic(tmp_path / "out.txt", "data")
    file_calls = [call for call in calls if not call[0]]
    directory_calls = [call for call in calls if call[0]]
    assert file_calls and all(access != os.O_RDONLY for _, access, _ in file_calls)
    assert all(not replaced for _, _, replaced in file_calls)  # flushed before the replace
    assert directory_calls and all(replaced for _, _, replaced in directory_calls)
