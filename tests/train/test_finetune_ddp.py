"""The same fine-tuning in DistributedDataParallel: two CPU processes on gloo, one result."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import napari_samed2

from .finetune_helpers import tiny_base, volume_set

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(sys.platform == "win32", reason="gloo on localhost: POSIX runners")
def test_two_ranks_end_with_identical_weights_and_rank_0_writes(tmp_path):
    base = tiny_base(tmp_path / "base.safetensors")
    labelset = volume_set(tmp_path / "set", frames=(2, 4, 6, 8))
    out, results = tmp_path / "ddp.safetensors", tmp_path / "results"
    results.mkdir()
    src = str(Path(napari_samed2.__file__).parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "NAPARI_SAMED2_CACHE": str(tmp_path / "cache"),
    }
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node",
        "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(WORKER), str(labelset.path), str(base), str(out), str(results),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((results / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["final"] == ranks[1]["final"]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["steps"] for r in ranks] == [3, 3]
    assert ranks[0]["path"] == str(out) and ranks[1]["path"] is None
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["settings"]["world_size"] == 2 and card["steps"] == 3
    assert [step for step, _ in card["heldout_dice"]["history"]] == [0, 1, 2, 3]
