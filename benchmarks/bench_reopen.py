"""Reopening an encoded stack: time to the first propagated frame and peak memory, beside
sam2's own SAM2VideoPredictor.

Same network as benchmarks/bench_propagation.py (sam2.1-tiny architecture, random weights, the
object-score head biased to "present"), written once as a checkpoint file so that ``samed2
encode`` and our sessions load it like any model; same frames (a JPEG folder for the
predictor, its decoded pixels as a ``.npy`` stack for us: the files ``samed2`` reads); same
click on frame 0.

1. ``samed2 encode STACK --model CKPT`` once per stack (its wall time is reported too).
2. In a fresh subprocess each, for a 50- and a 400-frame stack:
   - ``ours``: open the session on the encoded stack, click frame 0, propagate to frame 1;
   - ``ours-cold``: the same with the disk cache off (what reopening cost before);
   - ``predictor``: ``init_state`` (it reads and preprocesses every frame), the click, and
     ``propagate_in_video`` to frame 1.
   Each reports the seconds from opening to the first propagated frame (the model is loaded
   before the clock starts, for all three), its peak resident memory, how many images its
   encoder ran on, and its frame-1 mask (compared with the predictor's).
3. Ratios: predictor / ours seconds, and each one's peak memory 400 / 50 frames.

Also measured: the content hash of a frame (what the cache key reads) against the encoder's
time per frame.

Usage::

    python benchmarks/bench_reopen.py --threads 2                    # 1024 px, 50 and 400 frames
    python benchmarks/bench_reopen.py --size 256 --stacks 8 4 --ci   # tiny net: runs in seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_propagation import PREDICTOR, make_nets, make_video, peak_rss_mb, prompt_point
from PIL import Image

from napari_samed2.model import Preprocessing, sam2_config, save_checkpoint, small_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle import require_idle

IMPLEMENTATIONS = ("predictor", "ours", "ours-cold")


# -- inputs -------------------------------------------------------------------------------------


def make_stack(workdir: Path, frames: int, size: int) -> tuple[Path, Path]:
    """A JPEG folder (the predictor's input) and the same decoded pixels as ``.npy`` (ours)."""
    folder = workdir / f"jpeg_{size}_{frames}"
    stack = workdir / f"stack_{size}_{frames}.npy"
    if not stack.exists():
        make_video(folder, frames, size)
        paths = sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))
        pixels = np.stack([np.array(Image.open(p).convert("RGB")) for p in paths])
        np.save(stack, pixels)
    return folder, stack


def network_config(args) -> dict:
    return small_config() if args.ci else sam2_config("sam2.1-tiny", image_size=args.size)


def write_checkpoint(path: Path, config: dict) -> Path:
    net, _ = make_nets(config)
    size = int(config["image_size"])
    if not path.exists():
        save_checkpoint(
            path,
            net,
            config=config,
            temporal_adapter=False,
            preprocessing=Preprocessing(size),
            name="sam2.1-tiny-random",
        )
    return path


def encode(stack: Path, checkpoint: Path, env: dict) -> float:
    """``samed2 encode`` in a subprocess; its wall time."""
    command = [sys.executable, "-m", "napari_samed2.cli", "encode", str(stack)]
    command += ["--model", str(checkpoint), "--device", "cpu"]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    return time.perf_counter() - start


def hash_cost(stack: Path, frames: int = 8) -> float:
    """Milliseconds per frame of `FrameSource.content_hash` on ``stack`` (read included)."""
    from napari_samed2.engine import FrameSource

    source = FrameSource(np.load(stack, mmap_mode="r"))
    count = min(frames, source.num_frames)
    start = time.perf_counter()
    for frame in range(count):
        source.content_hash(frame)
    return (time.perf_counter() - start) / count * 1000


def encoder_cost(checkpoint: Path) -> float:
    """Milliseconds per frame of the image encoder on a pair of frames (after a warm-up)."""
    from napari_samed2.model import load_model

    net = load_model(checkpoint, device="cpu").net
    size = int(net.image_size)
    with torch.inference_mode():
        net.forward_image(torch.zeros(2, 3, size, size))
        start = time.perf_counter()
        net.forward_image(torch.zeros(2, 3, size, size))
    return (time.perf_counter() - start) / 2 * 1000


# -- one measurement per subprocess ---------------------------------------------------------------


def worker(args) -> None:
    torch.set_num_threads(args.threads)
    from napari_samed2.engine import PropagationSession, SessionSettings
    from napari_samed2.model import build_model, load_model
    from napari_samed2.stack_files import read_stack

    folder, stack = Path(args.folder), Path(args.stack)
    row, col = prompt_point(folder)
    model = load_model(args.checkpoint, device="cpu")
    encoded = {"images": 0}
    baseline = peak_rss_mb()
    with torch.inference_mode():
        if args.impl == "predictor":
            predictor = build_model(model.config, target=PREDICTOR)
            predictor.load_state_dict(model.net.state_dict())
            del model
            original = predictor.forward_image

            def counting(images):
                encoded["images"] += images.shape[0]
                return original(images)

            predictor.forward_image = counting
            start = time.perf_counter()
            state = predictor.init_state(str(folder))
            predictor.add_new_points_or_box(state, 0, 1, points=[[col, row]], labels=[1])
            for frame, _, logits in predictor.propagate_in_video(state, max_frame_num_to_track=1):
                if frame == 1:
                    seconds = time.perf_counter() - start
                    mask = (logits[0, 0] > 0).numpy()
                    break
        else:
            import napari_samed2.engine.features as features

            original = features.encode_images

            def counting(net, images):
                encoded["images"] += images.shape[0]
                return original(net, images)

            features.encode_images = counting
            settings = (
                SessionSettings() if args.impl == "ours" else SessionSettings(disk_cache_bytes=0)
            )
            start = time.perf_counter()
            session = PropagationSession(model, read_stack(stack), settings=settings)
            session.add_points(0, 1, [[row, col]], [1])
            for result in session.propagate("forward", stop=1):
                if result.frame == 1:
                    seconds = time.perf_counter() - start
                    mask = result.masks[1]
            session.close()
    np.save(Path(args.mask_out), mask)
    print(
        json.dumps(
            {
                "impl": args.impl,
                "stack_frames": int(np.load(stack, mmap_mode="r").shape[0]),
                "first_frame_s": seconds,
                "peak_rss_mb": peak_rss_mb(),
                "rss_before_open_mb": baseline,
                "encoded_images": encoded["images"],
            }
        )
    )


def measure(impl: str, folder: Path, stack: Path, checkpoint: Path, args, env) -> dict:
    mask_out = Path(args.workdir) / f"mask_{impl}_{stack.stem}.npy"
    command = [
        sys.executable, __file__, "--worker", "--impl", impl, "--folder", str(folder),
        "--stack", str(stack), "--checkpoint", str(checkpoint), "--threads", str(args.threads),
        "--mask-out", str(mask_out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} on {stack.name} failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["mask"] = str(mask_out)
    return row


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


# -- entry point ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="frame side in pixels")
    parser.add_argument("--stacks", type=int, nargs=2, default=[50, 400], metavar=("FEW", "MANY"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ci", action="store_true", help="the small test net: correctness only")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--impl", "--folder", "--stack", "--checkpoint", "--mask-out"):
        parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--allow-busy", action="store_true", help="time even if the load average is high"
    )
    args = parser.parse_args(argv)
    require_idle(args.allow_busy or getattr(args, "ci", False) or getattr(args, "worker", False))
    if args.worker:
        worker(args)
        return {}
    torch.set_num_threads(args.threads)
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="samed2-reopen-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "NAPARI_SAMED2_FEATURES": str(args.workdir / "features"),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path]),
    }
    config = network_config(args)
    checkpoint = write_checkpoint(args.workdir / f"net_{config['image_size']}.safetensors", config)
    report: dict = {
        "machine": {
            "cpu_threads": args.threads,
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
        },
        "size": args.size,
        "net_input": config["image_size"],
        "stacks": {},
    }
    for frames in args.stacks:
        folder, stack = make_stack(args.workdir, frames, args.size)
        encode_s = encode(stack, checkpoint, env)
        rows = {
            impl: measure(impl, folder, stack, checkpoint, args, env) for impl in IMPLEMENTATIONS
        }
        theirs = np.load(rows["predictor"]["mask"])
        entry = {
            "encode_s": encode_s,  # samed2 encode: process start, model load, encoding
            "rows": rows,
            "iou_ours_vs_predictor": iou(np.load(rows["ours"]["mask"]), theirs),
            "iou_ours_cold_vs_predictor": iou(np.load(rows["ours-cold"]["mask"]), theirs),
            "speedup_vs_predictor": rows["predictor"]["first_frame_s"]
            / rows["ours"]["first_frame_s"],
            "speedup_vs_cold": rows["ours-cold"]["first_frame_s"] / rows["ours"]["first_frame_s"],
        }
        report["stacks"][frames] = entry
        print(json.dumps({"frames": frames, **{k: v for k, v in entry.items() if k != "rows"}}))
        for row in rows.values():
            print("  ", json.dumps(row), flush=True)
    few, many = (report["stacks"][n]["rows"] for n in args.stacks)
    report["peak_growth"] = {
        impl: many[impl]["peak_rss_mb"] / few[impl]["peak_rss_mb"] for impl in IMPLEMENTATIONS
    }
    _, biggest = make_stack(args.workdir, max(args.stacks), args.size)
    report["hash_ms_per_frame"] = hash_cost(biggest)
    report["encoder_ms_per_frame"] = encoder_cost(checkpoint)
    report["hash_share_of_encoding"] = report["hash_ms_per_frame"] / report["encoder_ms_per_frame"]
    summary = {
        "first frame, predictor / ours": {
            n: round(report["stacks"][n]["speedup_vs_predictor"], 2) for n in args.stacks
        },
        "first frame, ours without cache / ours": {
            n: round(report["stacks"][n]["speedup_vs_cold"], 2) for n in args.stacks
        },
        f"peak memory {args.stacks[1]} / {args.stacks[0]} frames": {
            k: round(v, 2) for k, v in report["peak_growth"].items()
        },
        "content hash / encoding per frame": round(report["hash_share_of_encoding"], 4),
    }
    report["summary"] = summary
    print(json.dumps(summary, indent=1))
    if args.out:
        from napari_samed2.atomic import write_text_atomic

        write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
