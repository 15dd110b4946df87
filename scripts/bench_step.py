"""Time the parts of a training step (data, forward, loss, backward, optimiser) of any experiment's model.

    python scripts/bench_step.py                          # the quickstart model on its data, CPU
    python scripts/bench_step.py experiment=paper_r50 debug=smoke --steps 5 --size 640
    python scripts/bench_step.py --device cuda --profile   # plus the torch profiler's top operators
    python scripts/bench_step.py --precision bf16-mixed    # forward and loss under bf16 autocast
    python scripts/bench_step.py experiment=release_synthetic   # its trainer.precision: bf16-mixed
    python scripts/bench_step.py experiment=paper_r50 data=synthetic --size 640 --device cuda --fixed-batch \
        --compile --steps 20 --json out.json          # what scripts/gpu_check.sh runs
    python scripts/bench_step.py debug=smoke --baseline 1acd78f --rounds 3   # this tree against another

Arguments with "=" are Hydra overrides of conf/train.yaml. Prints the median seconds of each part over
`--steps` steps after 2 warm-up steps (docs/benchmarks.md), in float32 or under bf16 autocast as Lightning's
`trainer.precision` 32-true / bf16-mixed runs them (`--precision`, by default the experiment's). The batch
goes to the device compact and is completed there (`data.targets.complete_batch`, timed with the data).
`--size S` trains on S x S crops of synthetic S x S images (the data config's other values kept);
`--fixed-batch` reuses the first batch (the step without the data pipeline); `--compile` runs the training
forward through `torch.compile`, as `model.compile=true` does (its first, compiling step is a warm-up step).
On a GPU the step is timed whole (one wait for the device per step), then split into its parts with a wait
after each, and the peak memory is reported; TF32 and cuDNN's autotuner are on, as with `trainer=gpu`.
`--baseline REV` runs this command in the `src/`, `conf/` and `scripts/` of another git revision (its own
bench_step.py, so only the options it knows) and in this tree, alternating, `--rounds` times, and prints the
ratio of their step times (the machine's load changes less within a round).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build

PRECISIONS = ("32-true", "bf16-mixed")  # as Lightning's trainer.precision
WARMUP = 2  # untimed steps first
PARTS = ("forward", "loss", "backward", "optimiser")
REPO = Path(__file__).resolve().parents[1]


def size_overrides(size: int) -> list[str]:
    """Synthetic S x S images and crops, with the paper's trimap kernels and visibility bound at 640."""
    scale = size / 640
    kernel = [max(3, round(7 * scale)), max(3, round(25 * scale))]
    return [
        f"data.train.image_size=[{size},{size}]",
        f"data.crop_size=[{size},{size}]",
        f"data.trimap_kernel_train=[{kernel[0]},{kernel[1]}]",
        f"data.min_visible_pixels={round(100 * scale * scale)}",
    ]


def to_device(batch: dict, device: str) -> dict:
    """The batch on `device` (non-blocking from pinned memory on a GPU), completed there."""
    from e2e_him.data.targets import complete_batch

    cuda = device.startswith("cuda")
    moved = {
        k: (v.pin_memory().to(device, non_blocking=True) if cuda else v.to(device))
        if torch.is_tensor(v)
        else v
        for k, v in batch.items()
    }
    return complete_batch(moved)


def model_and_data(cfg, device: str = "cpu", compile: bool = False) -> tuple:
    """The config's module on `device`, set up for fit (the checks of a run, and the compiled forward with
    `compile`), and its data module set up for fit; seed 0 for the weights."""
    torch.manual_seed(0)
    module = build(cfg.model, "model").to(device)
    if compile:
        module.hparams.compile = True
    module.setup("fit")
    datamodule = build(cfg.data, "data")
    datamodule.setup("fit")
    return module, datamodule


def without_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """`argv` without the options `names` and their values (`--name value` or `--name=value`)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in names:
            skip = True
        elif not a.startswith(tuple(f"{n}=" for n in names)):
            out.append(a)
    return out


def run_baseline(args: argparse.Namespace, argv: list[str]) -> None:
    """This command in another revision's tree and in this one, alternating; the ratio of step times."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_data import baseline_tree

    rest = without_options(argv, ("--baseline", "--rounds"))
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_tree(args.baseline, Path(tmp), parts=("src", "conf", "scripts"))
        trees = {f"baseline {args.baseline}": base, "this tree": REPO}
        steps: dict[str, list[float]] = {name: [] for name in trees}
        for r in range(args.rounds):
            for name, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": str(tree / "src")}
                cmd = [sys.executable, str(tree / "scripts" / "bench_step.py"), *rest]
                proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
                if proc.returncode:
                    raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
                line = next(x for x in reversed(proc.stdout.splitlines()) if re.search(r"step [0-9.]+s", x))
                steps[name].append(float(re.search(r"step ([0-9.]+)s", line).group(1)))
                print(f"round {r + 1}, {name}: {line.strip()}", flush=True)
        before, after = steps.values()
        ratios = [b / t for b, t in zip(before, after)]
        print(f"step time, baseline / this tree: {statistics.median(ratios):.2f}x (rounds: "
              f"{', '.join(f'{x:.2f}' for x in ratios)}; median step {statistics.median(before):.3f} s "
              f"-> {statistics.median(after):.3f} s)")  # fmt: skip


def sync_counts(module, batch: dict, autocast) -> dict[str, int]:
    """How many times the training forward and the loss make the host wait for the GPU
    (`torch.cuda.set_sync_debug_mode`: one warning per synchronising call)."""
    import warnings

    counts = {}
    outputs = None
    for part in ("forward", "loss"):
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                with torch.no_grad(), autocast():
                    if part == "forward":
                        outputs = module.train_forward(batch["image"])
                    else:
                        module.criterion(outputs, batch)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        counts[part] = sum("synchroniz" in str(w.message) for w in caught)
    return counts


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true", help="also print the profiler's top 15 operators")
    parser.add_argument(
        "--precision",
        default=None,
        choices=PRECISIONS,
        help="bf16-mixed: forward and loss under bf16 autocast; default: trainer.precision",
    )
    parser.add_argument("--size", type=int, default=None, help="synthetic S x S images and crops")
    parser.add_argument("--fixed-batch", action="store_true", help="reuse the first batch (no data time)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--sync-check", action="store_true",
                        help="on a GPU: count the forward's and the loss's waits for the device")  # fmt: skip
    parser.add_argument("--baseline", default=None, help="a git revision to time against")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --baseline")
    args, overrides = parser.parse_known_args(argv)
    if args.baseline:
        return run_baseline(args, argv)
    if args.size:
        overrides = [*overrides, *size_overrides(args.size)]
    # timing does not depend on the weights: the backbone's pretrained ones are never fetched
    cfg = compose_config("train", [*overrides, "model.net.backbone.pretrained=null"])
    precision = args.precision or str(cfg.trainer.precision)
    if precision not in PRECISIONS:
        raise SystemExit(f"trainer.precision {precision} is not timed here: pass --precision {PRECISIONS}")
    cuda = args.device.startswith("cuda")
    if cuda:  # as trainer=gpu: TF32 and cuDNN's autotuner
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    module, datamodule = model_and_data(cfg, args.device, args.compile)
    batches = iter(datamodule.train_dataloader())
    optimizer = module.build_optimizer()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    device_type = torch.device(args.device).type
    autocast = partial(torch.autocast, device_type, torch.bfloat16, enabled=precision == "bf16-mixed")

    def step(batch: dict, split: bool) -> dict[str, float]:
        """One step; with `split` a wait for the device after each part, so that each part has its time."""
        times, t = {}, time.perf_counter()

        def lap(name: str) -> None:
            nonlocal t
            if split:
                sync()
                times[name] = time.perf_counter() - t
                t = time.perf_counter()

        with autocast():
            outputs = module.train_forward(batch["image"])
        lap("forward")
        with autocast():
            losses = module.criterion(outputs, batch)
        lap("loss")
        optimizer.zero_grad()
        losses["loss"].backward()
        lap("backward")
        optimizer.step()
        sync()
        lap("optimiser")
        return times

    def next_batch() -> tuple[dict, float]:
        t = time.perf_counter()
        batch = to_device(next(batches), args.device)
        sync()
        return batch, time.perf_counter() - t

    fixed, _ = next_batch() if args.fixed_batch else (None, 0.0)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rows, whole = [], []
    for i in range(args.steps + WARMUP):
        batch, data = (fixed, 0.0) if fixed is not None else next_batch()
        t = time.perf_counter()
        times = {"data": data, **step(batch, split=not cuda)}
        if i >= WARMUP:
            whole.append(time.perf_counter() - t)
            rows.append(times)
    if cuda:  # the parts, each followed by a wait for the device
        for _ in range(min(3, args.steps)):
            batch, data = (fixed, 0.0) if fixed is not None else next_batch()
            rows.append({"data": data, **step(batch, split=True)})
        rows = rows[-min(3, args.steps) :]
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    step_s = statistics.median(whole) + median["data"]
    median["step"] = step_s if cuda else sum(median.values())
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    label = f"{cfg.experiment_name}, batch {cfg.data.batch_size}"
    label += f", {args.size or cfg.data.crop_size[0]} px, device {args.device}, {precision}"
    label += ", compiled" if args.compile else ""
    print(f"{label}, {args.steps} steps:")
    tail = f"  steps/s {1 / median['step']:.2f}" + (f"  peak memory {peak:.2f} GiB" if peak else "")
    print("  ".join(f"{k} {v:.3f}s" for k, v in median.items()) + tail)
    syncs = sync_counts(module, batch, autocast) if cuda and args.sync_check else None
    if syncs is not None:
        print(
            f"  host syncs: forward {syncs['forward']}, loss {syncs['loss']} (the matching of every layer: 1)"
        )
    if args.json:
        record = {
            "label": label,
            **{f"{k}_s": v for k, v in median.items()},
            "steps_per_s": 1 / median["step"],
        }
        record.update(peak_memory_gib=peak, syncs=syncs)
        Path(args.json).write_text(json.dumps(record, indent=2))
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            step(batch, split=False)
        sort = "cuda_time_total" if cuda else "cpu_time_total"
        print(prof.key_averages().table(sort_by=sort, row_limit=15))


if __name__ == "__main__":
    main()
