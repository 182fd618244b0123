"""Observability: library modules log through `logging` (never print); the CLI shows it with -v."""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_samed2
from napari_samed2.engine import PropagationSession
from napari_samed2.model import load_model

PACKAGE = Path(napari_samed2.__file__).parent
# Commands write their results to stdout and their errors to stderr; nothing else prints.
PRINTING_MODULES = {
    "cli.py",
    "cli_encode.py",
    "cli_finetune.py",
    "cli_labelset.py",
    "train/commands.py",
}


def test_the_package_logger_has_a_null_handler_and_no_level():
    package = logging.getLogger("napari_samed2")
    assert any(isinstance(h, logging.NullHandler) for h in package.handlers)
    assert package.level == logging.NOTSET  # the application decides


def test_library_modules_never_print():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in PRINTING_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
            ):
                offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []


@pytest.fixture(scope="module")
def nano():
    return load_model("samed2-nano", "cpu", progressbar=False)


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(0)
    data = rng.normal(100, 10, (4, 64, 64)).astype(np.float32)
    data[:, 20:40, 18:44] += 200
    return data


def _messages(caplog, logger_name):
    return [r.getMessage() for r in caplog.records if r.name == logger_name]


def test_a_propagation_run_logs_its_start_and_end(nano, volume, caplog):
    session = PropagationSession(nano, volume)
    session.add_points(1, 1, np.array([[30, 30]]), np.array([1]))
    with caplog.at_level(logging.INFO, logger="napari_samed2"):
        results = list(session.propagate())
    assert len(results) == 4
    started, ended = _messages(caplog, "napari_samed2.engine.session")
    assert started.startswith("propagation started: 4 of 4 frames (3 forward, 1 backward)")
    assert "1 object(s)" in started and "samed2-nano" in started
    assert ended.startswith("propagation finished: 4 of 4 frames in ")


def test_a_closed_run_logs_how_far_it_got(nano, volume, caplog):
    session = PropagationSession(nano, volume)
    session.add_points(0, 1, np.array([[30, 30]]), np.array([1]))
    with caplog.at_level(logging.INFO, logger="napari_samed2"):
        run = session.propagate(direction="forward")
        next(run)
        run.close()
    messages = _messages(caplog, "napari_samed2.engine.session")
    assert messages[-1].startswith("propagation stopped: 1 of 4 frames in ")
    # the session is usable afterwards
    assert len(list(session.propagate(direction="forward", start=1))) == 3


def test_a_training_fit_logs_start_losses_and_end(tmp_path, caplog):
    from napari_samed2.model import small_config
    from napari_samed2.train.trainer import TrainSettings, read_log, train

    settings = TrainSettings(
        steps=2,
        batch_size=1,
        num_frames=2,
        warmup=1,
        checkpoint_every=2,
        log_every=1,
        config=small_config(image_size=128),
        mix={"nuclei": 1.0},
    )
    with caplog.at_level(logging.INFO, logger="napari_samed2"):
        train(settings, tmp_path / "run", device="cpu", progress=False)
    messages = _messages(caplog, "napari_samed2.train.trainer")
    assert messages[0].startswith("training started: steps 0 to 2 of 2 on cpu")
    logged = read_log(tmp_path / "run")
    assert messages[1:3] == [
        f"step {line['step']}/2: loss {line['total']:.4f} (mean of the last 1 steps), "
        f"lr {line['lr']:.2e}"
        for line in logged
    ]
    assert messages[3].startswith("training stopped at step 2 of 2 after ")


# -- the command line ----------------------------------------------------------------------------


def _samed2(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "napari_samed2.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory, volume):
    path = tmp_path_factory.mktemp("cli") / "stack.tif"
    tifffile.imwrite(path, volume)
    return path


def test_verbose_shows_info_records_on_stderr_in_a_real_process(stack_file, tmp_path):
    args = ["propagate", str(stack_file), "--device", "cpu", "--point", "1,30,30"]
    verbose = _samed2("-v", *args, "--out", str(tmp_path / "loud.npy"), cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    info = [line for line in verbose.stderr.splitlines() if " INFO " in line]
    assert any(
        "INFO napari_samed2.model.loader: loaded model samed2-nano" in line and "on cpu" in line
        for line in info
    ), verbose.stderr
    assert any("propagation finished: 4 of 4 frames" in line for line in info)
    assert " DEBUG " not in verbose.stderr
    # stdout holds the result only
    assert verbose.stdout.strip() == f"wrote {tmp_path / 'loud.npy'} (4 frames)"
    # -v after the command works the same
    after = _samed2(*args, "--out", str(tmp_path / "after.npy"), "-v", cwd=tmp_path)
    assert after.returncode == 0 and "loaded model samed2-nano" in after.stderr


def test_double_verbose_adds_the_traceback_of_an_error(tmp_path):
    missing = tmp_path / "missing.tif"
    args = ["propagate", str(missing), "--point", "0,1,1", "--out", str(tmp_path / "l.npy")]
    plain = _samed2(*args, cwd=tmp_path)
    assert plain.returncode == 2  # and without -v: the error line only, no log records
    assert plain.stderr.strip().splitlines() == [
        f"samed2 propagate: error: input {str(missing)!r} does not exist"
    ]
    debug = _samed2("-vv", *args, cwd=tmp_path)
    assert debug.returncode == 2
    assert "DEBUG napari_samed2.cli: samed2 propagate failed" in debug.stderr
    assert "Traceback" in debug.stderr and "FileNotFoundError" in debug.stderr
