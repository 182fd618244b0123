"""Propagation benchmark: our PropagationSession beside sam2's own SAM2VideoPredictor.

Same network (sam2.1-tiny architecture, random weights; the object-score head is biased to
"present" so that masks are not empty), same frames (a JPEG folder: all the predictor reads;
our session reads the same files lazily), same prompt, one process, CPU.

Measured:
- whole-job wall time (open the stack + prompt + propagate N frames) for the predictor, our
  ``memory="sam2"`` mode and our ``memory="selective"`` mode (fp32, the predictor's
  precision), and our defaults (selective memory in the precision ``load_model`` picks on
  this device: ``precision="auto"`` on a CPU); ratios ours / predictor;
- per-frame IoU of the defaults' masks against fp32 selective's (a fast precision must keep
  the masks: >= 0.98);
- per-frame IoU of our sam2 mode against the predictor (must be >= 0.999);
- re-propagation after a correction over visited frames (cached features) against the first
  pass, per frame;
- peak resident memory and time to the first propagated frame, opening a 50- vs a 400-frame
  stack and tracking 5 frames (each in a fresh subprocess).

Usage::

    python benchmarks/bench_propagation.py --ci            # tiny, seconds: correctness only
    python benchmarks/bench_propagation.py --threads 2     # full: 512 and 1024 px (long)

Figures go to stdout as JSON and, with ``--out``, to a file; docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from napari_samed2.engine import PropagationSession, SessionSettings
from napari_samed2.model import (
    LoadedModel,
    Preprocessing,
    build_model,
    compute_dtype,
    requested_precision,
    sam2_config,
    small_config,
)
from napari_samed2.model.precision import choose

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle import require_idle

PREDICTOR = "sam2.sam2_video_predictor.SAM2VideoPredictor"


# -- inputs -------------------------------------------------------------------------------------


def make_video(folder: Path, frames: int, size: int, seed: int = 0) -> None:
    """A JPEG folder ``00000.jpg ...``: a bright textured disk moving on noise, size x size."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    radius = size / 8
    for t in range(frames):
        cy = size / 2 + size / 6 * np.sin(t / 10)
        cx = size / 4 + (size / 2) * (t % 50) / 50
        image = rng.normal(70, 20, (size, size))
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] += 110
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{t:05d}.jpg")


class JpegStack:
    """A lazy ``(T, H, W, 3)`` uint8 array over a JPEG folder (decoded like sam2 does)."""

    def __init__(self, folder: Path):
        self.paths = sorted(Path(folder).glob("*.jpg"), key=lambda p: int(p.stem))
        width, height = Image.open(self.paths[0]).size
        self.shape = (len(self.paths), height, width, 3)
        self.dtype = np.dtype(np.uint8)

    def __getitem__(self, index):
        frame = index[0] if isinstance(index, tuple) else index
        return np.array(Image.open(self.paths[frame]).convert("RGB"))


def prompt_point(folder: Path) -> tuple[float, float]:
    """(row, col) of the disk centre in frame 0."""
    size = Image.open(next(Path(folder).glob("*.jpg"))).size[0]
    return size / 2, size / 4


def make_nets(config: dict, seed: int = 0):
    torch.manual_seed(seed)
    net = build_model(config)
    head = net.sam_mask_decoder.pred_obj_score_head
    last = head.layers[-1] if hasattr(head, "layers") else head
    with torch.no_grad():
        last.bias.fill_(10.0)
    predictor = build_model(config, target=PREDICTOR)
    predictor.load_state_dict(net.state_dict())
    return net, predictor


def default_precision_model(net, config: dict) -> LoadedModel:
    """``net`` as `load_model` would hand it out on this CPU: in the default precision
    (``"auto"``: bf16 where measured faster and its masks agree with fp32's)."""
    device = torch.device("cpu")
    preprocessing = Preprocessing(image_size=int(config["image_size"]))
    precision = requested_precision(device, None)
    calibration = None
    if precision == "auto":
        calibration = choose(net, device, config, preprocessing)
        precision = calibration.precision
    return LoadedModel(
        name="sam2.1-tiny (random weights)", net=net, preprocessing=preprocessing,
        device=device, dtype=compute_dtype(device, precision), config=config,
        temporal_adapter=False, calibration=calibration,
    )  # fmt: skip


# -- jobs ---------------------------------------------------------------------------------------


def encoder_settings(**changes) -> SessionSettings:
    """Session settings without the on-disk feature cache: every job runs the encoder, as the
    predictor does (benchmarks/bench_reopen.py measures the cache)."""
    return SessionSettings(disk_cache_bytes=0, **changes)


def run_predictor(predictor, folder: Path, frames: int) -> dict:
    row, col = prompt_point(folder)
    start = time.perf_counter()
    with torch.inference_mode():
        state = predictor.init_state(str(folder))
        predictor.add_new_points_or_box(state, 0, 1, points=[[col, row]], labels=[1])
        masks, first = {}, None
        for frame, _, logits in predictor.propagate_in_video(
            state, max_frame_num_to_track=frames - 1
        ):
            masks[frame] = (logits[0, 0] > 0).numpy()
            first = first or time.perf_counter() - start
    return {"seconds": time.perf_counter() - start, "first_frame_s": first, "masks": masks}


def run_session(net, folder: Path, frames: int, memory: str, settings=None) -> dict:
    row, col = prompt_point(folder)
    start = time.perf_counter()
    # sam2 mode with sam2's own output: no temporal connectivity filter (one object: no
    # overlaps to resolve either)
    session = PropagationSession(
        net, JpegStack(folder), memory=memory, settings=settings or encoder_settings(),
        connected=memory != "sam2",
    )  # fmt: skip
    session.add_points(0, 1, [[row, col]], [1])
    masks, first = {}, None
    for result in session.propagate("forward", stop=frames - 1):
        masks[result.frame] = result.masks[1]
        first = first or time.perf_counter() - start
    seconds = time.perf_counter() - start

    # re-propagation after a correction: same frames, features from the cache
    corrected = frames // 2
    session.correct(corrected, 1, masks[corrected])
    first_pass_per_frame = seconds / frames
    again = time.perf_counter()
    count = sum(1 for _ in session.propagate("forward", start=corrected, stop=frames - 1))
    repropagation_per_frame = (time.perf_counter() - again) / count
    result = {
        "seconds": seconds,
        "first_frame_s": first,
        "masks": masks,
        "repropagation_speedup": first_pass_per_frame / repropagation_per_frame,
        "encoder_calls": session.encoder.encoder_calls,
        "bank_entries": len(session.bank),
    }
    session.close()
    return result


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def compare(
    config: dict, folder: Path, frames: int, repeats: int = 1, prefetch: bool = True
) -> dict:
    net, predictor = make_nets(config)
    default = default_precision_model(net, config)
    with torch.inference_mode():  # warm-up, so that no job pays for first-call setup
        size = config["image_size"]
        net.forward_image(torch.zeros(1, 3, size, size))
        predictor.forward_image(torch.zeros(1, 3, size, size))
    jobs = {
        "predictor": lambda: run_predictor(predictor, folder, frames),
        "sam2": lambda: run_session(net, folder, frames, "sam2"),
        "selective": lambda: run_session(net, folder, frames, "selective"),
        "prefetch": lambda: run_session(
            net, folder, frames, "selective", encoder_settings(prefetch=True)
        ),
        "default": lambda: run_session(default, folder, frames, "selective"),
    }
    if not prefetch:
        del jobs["prefetch"]
    # Interleaved repeats, median per job: the CPU is shared, so load drifts during a run.
    runs: dict[str, list[dict]] = {name: [] for name in jobs}
    for repeat in range(repeats):
        order = list(jobs) if repeat % 2 == 0 else list(jobs)[::-1]
        for name in order:
            runs[name].append(jobs[name]())
    median = {
        name: sorted(r, key=lambda job: job["seconds"])[len(r) // 2] for name, r in runs.items()
    }
    theirs, sam2_mode, selective, ours_default = (
        median[name] for name in ("predictor", "sam2", "selective", "default")
    )
    ious = [iou(sam2_mode["masks"][f], theirs["masks"][f]) for f in theirs["masks"]]
    default_ious = [
        iou(ours_default["masks"][f], selective["masks"][f]) for f in selective["masks"]
    ]
    report = {
        "frames": frames,
        "image_size": config["image_size"],
        "repeats": repeats,
        "all_seconds": {name: [round(job["seconds"], 2) for job in r] for name, r in runs.items()},
        "predictor_s": theirs["seconds"],
        "sam2_mode_s": sam2_mode["seconds"],
        "selective_s": selective["seconds"],
        "ratio_sam2_mode": sam2_mode["seconds"] / theirs["seconds"],
        "ratio_selective": selective["seconds"] / theirs["seconds"],
        "default_precision": default.precision_text,
        "default_s": ours_default["seconds"],
        "ratio_default": ours_default["seconds"] / theirs["seconds"],
        "min_iou_default_vs_fp32_selective": min(default_ious),
        "repropagation_speedup_default": ours_default["repropagation_speedup"],
        "min_iou_sam2_mode_vs_predictor": min(ious),
        "frames_compared": len(ious),
        "mask_coverage": float(np.mean([m.mean() for m in theirs["masks"].values()])),
        "repropagation_speedup_sam2_mode": sam2_mode["repropagation_speedup"],
        "repropagation_speedup_selective": selective["repropagation_speedup"],
        "selective_bank_entries": selective["bank_entries"],
    }
    if "prefetch" in median:
        report["selective_prefetch_s"] = median["prefetch"]["seconds"]
        report["ratio_selective_prefetch"] = median["prefetch"]["seconds"] / theirs["seconds"]
    return report


# -- peak memory (fresh process per measurement) --------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    /proc's VmHWM belongs to the process image (reset by exec); ``ru_maxrss`` is not: a
    subprocess would inherit its parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_worker(args) -> None:
    torch.set_num_threads(args.threads)
    config = sam2_config("sam2.1-tiny", image_size=args.size)
    net, predictor = make_nets(config)
    folder = Path(args.folder)
    baseline = peak_rss_mb()
    if args.impl == "predictor":
        job = run_predictor(predictor, folder, args.track)
    else:
        row, col = prompt_point(folder)
        start = time.perf_counter()
        session = PropagationSession(
            net, JpegStack(folder), memory=args.impl, settings=encoder_settings()
        )
        session.add_points(0, 1, [[row, col]], [1])
        first = None
        for _ in session.propagate("forward", stop=args.track - 1):
            first = first or time.perf_counter() - start
        job = {"seconds": time.perf_counter() - start, "first_frame_s": first}
    peak = peak_rss_mb()
    print(
        json.dumps(
            {
                "impl": args.impl,
                "stack_frames": len(list(folder.glob("*.jpg"))),
                "peak_rss_mb": peak,
                "rss_before_job_mb": baseline,
                "seconds": job["seconds"],
                "first_frame_s": job["first_frame_s"],
            }
        )
    )


def peak_memory(size: int, stacks: list[int], track: int, threads: int, workdir: Path) -> list:
    rows = []
    for frames in stacks:
        folder = workdir / f"stack_{size}_{frames}"
        if not folder.exists():
            make_video(folder, frames, size)
        for impl in ("predictor", "sam2", "selective"):
            command = [
                sys.executable, __file__, "--worker", "--impl", impl, "--folder", str(folder),
                "--size", str(size), "--track", str(track), "--threads", str(threads),
            ]  # fmt: skip
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


# -- entry point ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ci", action="store_true", help="tiny net and stack; correctness")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--frames", type=int, nargs="+", default=[50, 10], help="per size")
    parser.add_argument("--peak-size", type=int, default=1024)
    parser.add_argument("--peak-stacks", type=int, nargs="+", default=[50, 400])
    parser.add_argument("--track", type=int, default=5)
    parser.add_argument("--skip-peak", action="store_true")
    parser.add_argument(
        "--skip-prefetch", action="store_true", help="leave out the selective + prefetch job"
    )
    parser.add_argument("--peak-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved, median reported")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="selective", help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=1024, help=argparse.SUPPRESS)
    parser.add_argument(
        "--allow-busy", action="store_true", help="time even if the load average is high"
    )
    args = parser.parse_args(argv)
    require_idle(args.allow_busy or getattr(args, "ci", False) or getattr(args, "worker", False))
    if args.worker:
        peak_worker(args)
        return {}
    torch.set_num_threads(args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="samed2-bench-"))
    report: dict = {
        "machine": {
            "cpu_threads": args.threads,
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "device": "cpu",
        },
        "runs": [],
    }
    if args.ci:
        folder = workdir / "ci"
        make_video(folder, 6, 96)
        report["runs"].append(compare(small_config(), folder, 6))
    else:
        for size, frames in zip(args.sizes, args.frames, strict=True):
            if args.peak_only:
                break
            folder = workdir / f"video_{size}_{frames}"
            make_video(folder, frames, size)
            config = sam2_config("sam2.1-tiny", image_size=size)
            run = compare(config, folder, frames, args.repeats, prefetch=not args.skip_prefetch)
            report["runs"].append(run)
            print(json.dumps(run), flush=True)
        if not args.skip_peak:
            report["peak_memory"] = peak_memory(
                args.peak_size, args.peak_stacks, args.track, args.threads, workdir
            )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        from napari_samed2.atomic import write_text_atomic

        write_text_atomic(args.out, text + "\n")
    return report


if __name__ == "__main__":
    main()
