"""Memory attention per tracked frame: sam2's `MemoryAttention` beside ours with kept keys.

Same network (sam2.1-tiny architecture, random weights; memory attention is the same in every
SAM 2.1 size), one object tracked through a sequence as sam2 tracks it: each frame attends to
the conditioning frame (slot 0) and the 6 frames before it (slots 1-6, moving one slot a
frame) and to 16 object pointers, and adds its own memory for the next frame. Per frame,
medians of interleaved repeats, CPU, one process:

- ``sam2``: sam2's ``MemoryAttention.forward`` on the concatenated memory (what
  ``SAM2Base._prepare_memory_conditioned_features`` runs);
- ``kept keys``: `napari_samed2.model.memory_attention.attend` with a `MemoryKeyCache`
  (keys and values of the 7 memory frames projected once each, rotary-encoded once);

and the largest difference of their outputs (float rounding).

Usage::

    python benchmarks/bench_memory_attention.py --sizes 512 1024 --frames 12 [--out ma.json]

Check that the machine is idle first (``uptime``: load average well under 1).
``--sizes 128 --frames 3 --repeats 1`` only checks that it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from napari_samed2.model import build_model, sam2_config
from napari_samed2.model.memory_attention import MemoryFrame, MemoryKeyCache, attend

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle import require_idle

POINTERS = 16


def _sequence(net, frames: int, seed: int = 0):
    """Per tracked frame: current features and encoding, memory frames, pointer tokens."""
    generator = torch.Generator().manual_seed(seed)
    side = int(net.image_size) // 16
    tokens, channels, mem_dim = side * side, net.hidden_dim, net.mem_dim
    pos_enc = torch.randn(1, mem_dim, side, side, generator=generator)
    curr_pos = torch.randn(tokens, 1, channels, generator=generator)
    memories = [torch.randn(1, mem_dim, side, side, generator=generator).to(torch.bfloat16)]
    pointer_tokens = POINTERS * (channels // mem_dim)
    steps = []
    for _ in range(frames):
        recent = memories[1:][-(net.num_maskmem - 1) :]
        slots = [MemoryFrame(memories[0], pos_enc, 0)] + [
            MemoryFrame(features, pos_enc, net.num_maskmem - rank)
            for rank, features in enumerate(reversed(recent), 1)
        ]
        steps.append(
            (
                torch.randn(tokens, 1, channels, generator=generator),
                curr_pos,
                slots,
                torch.randn(pointer_tokens, 1, mem_dim, generator=generator),
                torch.randn(pointer_tokens, 1, mem_dim, generator=generator),
            )
        )
        memories.append(torch.randn(1, mem_dim, side, side, generator=generator).to(torch.bfloat16))
    return steps


def _sam2s(net, curr, curr_pos, frames, ptrs, ptr_pos):
    memory = [f.features.float().flatten(2).permute(2, 0, 1) for f in frames] + [ptrs]
    memory_pos = [
        f.pos_enc.flatten(2).permute(2, 0, 1) + net.maskmem_tpos_enc[net.num_maskmem - f.t_pos - 1]
        for f in frames
    ] + [ptr_pos]
    return net.memory_attention(
        curr=[curr],
        curr_pos=[curr_pos],
        memory=torch.cat(memory),
        memory_pos=torch.cat(memory_pos),
        num_obj_ptr_tokens=ptrs.shape[0],
    )


def _kept(net, cache, curr, curr_pos, frames, ptrs, ptr_pos):
    return attend(
        net.memory_attention,
        curr=curr,
        curr_pos=curr_pos,
        frames=frames,
        tpos_enc=net.maskmem_tpos_enc,
        pointers=ptrs,
        pointer_pos=ptr_pos,
        scope=cache.scope(1),
    )


def run(size: int, frames: int, repeats: int) -> dict:
    torch.manual_seed(0)
    net = build_model(sam2_config("sam2.1-tiny", image_size=size)).eval()
    steps = _sequence(net, frames)
    times: dict[str, list[float]] = {"sam2": [], "kept keys": []}
    difference = 0.0
    with torch.inference_mode():
        _sam2s(net, *steps[0])  # warm-up
        for _ in range(repeats):
            cache = MemoryKeyCache(max_bytes=2**32)
            per_frame = {name: [] for name in times}
            for index, step in enumerate(steps):
                order = ("sam2", "kept keys") if index % 2 == 0 else ("kept keys", "sam2")
                outputs = {}
                for name in order:
                    started = time.perf_counter()
                    outputs[name] = (
                        _sam2s(net, *step) if name == "sam2" else _kept(net, cache, *step)
                    )
                    per_frame[name].append(time.perf_counter() - started)
                difference = max(
                    difference, float((outputs["sam2"] - outputs["kept keys"]).abs().max())
                )
            # the first frames fill the memory and the cache: the steady state is what counts
            steady = max(1, min(net.num_maskmem, frames - 1))
            for name in times:
                times[name].append(statistics.median(per_frame[name][steady:] or per_frame[name]))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "size": size,
        "tokens_per_memory": (size // 16) ** 2,
        "frames": frames,
        "repeats": repeats,
        "sam2_ms": 1000 * medians["sam2"],
        "kept_keys_ms": 1000 * medians["kept keys"],
        "ratio": medians["kept keys"] / medians["sam2"],
        "max_abs_difference": difference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--frames", type=int, default=12, help="tracked frames per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out")
    parser.add_argument(
        "--allow-busy", action="store_true", help="time even if the load average is high"
    )
    args = parser.parse_args()
    require_idle(args.allow_busy or getattr(args, "ci", False) or getattr(args, "worker", False))
    torch.set_num_threads(args.threads)
    rows = [run(size, args.frames, args.repeats) for size in args.sizes]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end: {load:.2f} on {os.cpu_count()} cores")
    print("| size | sam2 ms/frame | kept keys ms/frame | ratio | max abs difference |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['size']} | {row['sam2_ms']:.1f} | {row['kept_keys_ms']:.1f} | "
            f"{row['ratio']:.2f} | {row['max_abs_difference']:.1e} |"
        )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump({"threads": args.threads, "load": load, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
