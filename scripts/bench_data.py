"""Throughput of the training data pipeline, in samples per second for one worker (docs/benchmarks.md).

    python scripts/bench_data.py data=synthetic
    python scripts/bench_data.py data=instance_folder data.root=../shared/data/coco_persons
    python scripts/bench_data.py --photos 32 --baseline 1acd78f --rounds 3    # photo-scale, before / after

Builds the data module from conf/train.yaml with the overrides (arguments with "="), then times N training
samples (read, composite, augment, crop, targets, collate) in one process with one OpenCV and one torch
thread, as a data-loader worker runs them, after a warm-up, and splits the time by stage (decode, resize,
composite, augment, targets, collate, other; each function's own time, without the stages it calls). What a
batch still needs on the device (float targets and trimaps, `e2e_him.data.targets.complete_batch`) is timed
apart, here on the CPU.

`--photos N` writes N photo-scale images in HIM-100K's layout (JPEG photos of 1,500-2,500 px on the long side,
1-6 people each as 8-bit PNG mattes; `real/images`, `real/alphas/<stem>/NN.png`, `train.txt`, `val.txt`) into
`--data-dir` (kept and reused) and times `experiment=paper_r50`'s data config on them. `--baseline REV` also
times the pipeline of another git revision of this repository (its `src/` and `conf/`, taken with `git
archive`), alternating with this tree for `--rounds` rounds, reports the ratio of the same rounds, and
compares the samples both produce for the same (index, epoch): the differences are resampling (docs/data.md).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0)
# stage -> functions (by name, in any e2e_him.data module of either tree) whose own time goes to it
STAGES = {
    "decode": ("read_image", "read_alpha", "read_alpha8"),
    "resize": ("resize_stack", "resize_image", "resize_record"),
    "composite": ("composite_instances", "paste_instances"),
    "targets": ("_targets", "trimap_from_alpha", "normalize_image", "training_targets"),
    "collate": ("collate",),
}
# albumentations' pipelines (flip, affine, colour) are timed as "augment"


# ------------------------------------------------------------------------------------------------- data
def photo_size(rng: np.random.Generator) -> tuple[int, int]:
    """(H, W): long side uniform in 1,500-2,500 px, a common aspect ratio, portrait 35 % of the time."""
    long_side = int(rng.integers(1500, 2501))
    short = round(long_side / ASPECTS[int(rng.integers(len(ASPECTS)))])
    return (long_side, short) if rng.random() < 0.35 else (short, long_side)


def make_photos(root: Path, n: int, val: int = 2, seed: int = 0) -> Path:
    """`n` training and `val` validation photos with 1-6 people each in HIM-100K's layout under `root`
    (written once: a folder whose `train.txt` lists `n` images is reused)."""
    from e2e_him.data.io import write_alpha
    from e2e_him.data.synthetic import SyntheticPeople

    listing = root / "train.txt"
    if listing.is_file() and len(listing.read_text().split()) == n and (root / "val.txt").is_file():
        return root
    part = root / "real"
    (part / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    stems = []
    t0 = time.perf_counter()
    for i in range(n + val):
        h, w = photo_size(rng)
        k = int(rng.integers(1, 7))
        scene = SyntheticPeople(1, (h, w), k, k, seed=seed * 100_003 + i, supersample=2).render(0)
        stem = f"{i:05d}"
        bgr = cv2.cvtColor(scene["image"], cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(part / "images" / f"{stem}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
        for p, a in enumerate(scene["alphas"]):
            write_alpha(part / "alphas" / stem / f"{p:02d}.png", a)
        stems.append(stem)
        print(f"[bench_data] wrote {stem}: {w}x{h}, {len(scene['alphas'])} people", flush=True)
    (root / "val.txt").write_text("\n".join(stems[n:]) + "\n")
    listing.write_text("\n".join(stems[:n]) + "\n")
    print(f"[bench_data] {n + val} photos in {time.perf_counter() - t0:.0f} s under {root}")
    return root


# ----------------------------------------------------------------------------------------- stage timers
class StageClock:
    """Wraps functions so that each call's own time (without nested timed calls) goes to its stage."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._stack: list[float] = []  # time spent in nested timed calls, per open call

    def wrap(self, fn, stage: str):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self._stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t0
                nested = self._stack.pop()
                self.totals[stage] = self.totals.get(stage, 0.0) + spent - nested
                if self._stack:
                    self._stack[-1] += spent

        timed.__wrapped_stage__ = stage
        return timed

    def install(self) -> None:
        """Wrap the functions of `STAGES` wherever an e2e_him.data module holds them, and albumentations."""
        import albumentations as A

        originals = {}
        for name, module in list(sys.modules.items()):
            if not name.startswith("e2e_him.data"):
                continue
            for stage, names in STAGES.items():
                for fn_name in names:
                    fn = getattr(module, fn_name, None)
                    if fn is None or hasattr(fn, "__wrapped_stage__"):
                        continue
                    wrapped = originals.setdefault(id(fn), self.wrap(fn, stage))
                    setattr(module, fn_name, wrapped)
                for cls in [v for v in vars(module).values() if isinstance(v, type)]:
                    for fn_name in names:  # static methods of the pipeline's classes
                        fn = cls.__dict__.get(fn_name)
                        if isinstance(fn, staticmethod):
                            setattr(cls, fn_name, staticmethod(self.wrap(fn.__func__, stage)))
        A.Compose.__call__ = self.wrap(A.Compose.__call__, "augment")


# --------------------------------------------------------------------------------------------- worker
def compose_data(overrides: list[str]):
    """The `data` node of conf/train.yaml with the overrides, resolved."""
    from omegaconf import OmegaConf

    from e2e_him.utils.config import compose_config

    data = compose_config("train", overrides).data
    OmegaConf.resolve(data)
    return data


def unnormalised(image) -> np.ndarray:
    """(3, H, W) ImageNet-normalised -> (H, W, 3) uint8."""
    from e2e_him.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    x = image.permute(1, 2, 0).numpy() * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
    return np.round(x * 255).clip(0, 255).astype(np.uint8)


def run_worker(args, overrides: list[str]) -> dict:
    """Time the pipeline of the e2e_him that is importable here; dump the first samples to compare."""
    import torch
    from hydra.utils import instantiate

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    import e2e_him.data.collate as collate_module

    try:
        from e2e_him.data.targets import complete_batch as complete_targets
    except ImportError:  # a tree whose samples carry their targets already
        complete_targets = None
    dm = instantiate(compose_data(overrides))
    dm.setup("fit")
    ds = dm.train_dataset
    n = len(ds)
    clock = StageClock()
    clock.install()
    collate = collate_module.collate
    for i in range(args.warmup):
        collate([ds[(i % n, 0)]])
    clock.totals.clear()
    times, cpu_times, people, device_times = [], [], [], []
    dump = Path(args.dump) if args.dump else None
    for i in range(args.samples):
        key = ((args.warmup + i) % n, 1)
        t0, c0 = time.perf_counter(), time.process_time()
        batch = collate([ds[key]])
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        people.append(int(batch["num_instances"][0]))
        if complete_targets is not None:  # the device's part, not the worker's: off the stage clock
            totals = dict(clock.totals)
            t0 = time.perf_counter()
            batch = complete_targets(batch)
            device_times.append(time.perf_counter() - t0)
            clock.totals = totals
        if dump is not None and i < args.compare:
            k = int(batch["num_instances"][0])
            np.savez(
                dump / f"{i:03d}.npz",
                image=unnormalised(batch["image"][0]),
                alphas=batch["alphas"][0, :k].float().numpy(),
                trimaps=batch["trimaps"][0, :k].to(torch.uint8).numpy(),
            )
    total = float(np.sum(times))
    return {
        "rate": len(times) / total,
        "cpu_rate": len(cpu_times) / float(np.sum(cpu_times)),  # per CPU second: what the load leaves alone
        "median_ms": float(np.median(times) * 1e3),
        "people": float(np.mean(people)),
        "stages": {k: v / len(times) * 1e3 for k, v in clock.totals.items()},
        "per_sample_ms": total / len(times) * 1e3,
        "device_ms": float(np.median(device_times) * 1e3) if device_times else None,
        "source": repr(ds.source),
        "crop": list(dm.crop_size),
    }


# ------------------------------------------------------------------------------------------- comparing
def baseline_tree(rev: str, folder: Path, parts: tuple[str, ...] = ("src", "conf")) -> Path:
    """The folders `parts` of revision `rev` of this repository, extracted into `folder`."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, *parts], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"git archive {rev}: {archive.stderr.decode().strip()}")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def worker(tree: Path, args, overrides: list[str], dump: Path | None) -> dict:
    """Run this script's worker in a fresh process that imports e2e_him from `tree`."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--worker", out.name, "--samples", str(args.samples)]
        cmd += ["--warmup", str(args.warmup), "--compare", str(args.compare)]
        cmd += ["--dump", str(dump)] if dump else []
        env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([*cmd, *overrides], env=env, capture_output=True, text=True, cwd=tree)
        if proc.returncode:
            raise SystemExit(f"worker for {tree} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        return json.loads(Path(out.name).read_text())


def differences(before: Path, after: Path) -> dict[str, float]:
    """How the samples of two trees differ, over the dumped (index, epoch) pairs."""
    img, alpha, alpha_max, far, tri, same_people = [], [], [], [], [], 0
    files = sorted(before.glob("*.npz"))
    for path in files:
        a, b = np.load(path), np.load(after / path.name)
        img.append(np.abs(a["image"].astype(np.int16) - b["image"]).mean())
        if a["alphas"].shape == b["alphas"].shape:
            same_people += 1
            if a["alphas"].size:
                d = np.abs(a["alphas"] - b["alphas"])
                alpha.append(d.mean())
                alpha_max.append(d.max())
                far.append((d > 0.05).mean())
                tri.append((a["trimaps"] != b["trimaps"]).mean())
    return {
        "samples": len(files),
        "same people": same_people,
        "image MAD (8-bit levels)": float(np.mean(img)),
        "alpha MAD": float(np.mean(alpha)) if alpha else 0.0,
        "alpha max": float(np.max(alpha_max)) if alpha_max else 0.0,
        "alpha pixels off by > 0.05": float(np.mean(far)) if far else 0.0,
        "trimap pixels that differ": float(np.mean(tri)) if tri else 0.0,
    }


def report(name: str, runs: list[dict]) -> None:
    rates, cpu = [r["rate"] for r in runs], [r.get("cpu_rate", 0.0) for r in runs]
    print(f"[bench_data] {name}: {statistics.median(rates):.2f} samples/s per worker "
          f"(rounds: {', '.join(f'{x:.2f}' for x in rates)}; {runs[0]['people']:.1f} people per sample, "
          f"median {statistics.median(r['median_ms'] for r in runs):.0f} ms); "
          f"{statistics.median(cpu):.2f} samples per CPU second")  # fmt: skip
    stages = sorted({k for r in runs for k in r["stages"]})
    split = {k: statistics.median(r["stages"].get(k, 0.0) for r in runs) for k in stages}
    split["other"] = statistics.median(r["per_sample_ms"] for r in runs) - sum(split.values())
    print("    per sample (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in split.items()))
    device = [r["device_ms"] for r in runs if r["device_ms"] is not None]
    if device:
        print(
            "    on the device (here the CPU, 1 thread): float targets and trimaps "
            f"{statistics.median(device):.1f} ms"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=60, help="timed samples")
    parser.add_argument("--warmup", type=int, default=5, help="untimed samples first")
    parser.add_argument("--photos", type=int, default=0, help="generate this many photo-scale images")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "e2e_him_photos")
    parser.add_argument("--baseline", default=None, help="a git revision to time against (e.g. main)")
    parser.add_argument("--rounds", type=int, default=1, help="alternations of baseline and this tree")
    parser.add_argument("--compare", type=int, default=20, help="samples compared with the baseline's")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dump", default=None, help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args(argv)

    if args.worker:
        result = run_worker(args, overrides)
        Path(args.worker).write_text(json.dumps(result))
        return
    if args.photos:
        make_photos(args.data_dir, args.photos)
        overrides = ["experiment=paper_r50", f"data.root={args.data_dir}", *overrides]
    import torch

    print(f"[bench_data] {platform.processor() or platform.machine()}, python {sys.version.split()[0]}, "
          f"torch {torch.__version__}, 1 thread; overrides: {' '.join(overrides) or 'none'}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trees = {"this tree": REPO}
        if args.baseline:
            trees = {f"baseline {args.baseline}": baseline_tree(args.baseline, tmp / "baseline"), **trees}
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        dumps = {name: tmp / f"dump{i}" for i, name in enumerate(trees)}
        for r in range(args.rounds):
            for name, tree in trees.items():
                dump = dumps[name] if r == 0 and args.baseline else None
                if dump:
                    dump.mkdir()
                runs[name].append(worker(tree, args, overrides, dump))
                last = runs[name][-1]
                print(f"[bench_data] round {r + 1}, {name}: {last['rate']:.2f} samples/s, "
                      f"{last['cpu_rate']:.2f} per CPU second", flush=True)  # fmt: skip
        first = next(iter(runs.values()))[0]
        print(f"[bench_data] {first['source']}: crop {first['crop']}, {args.samples} samples per round")
        for name, results in runs.items():
            report(name, results)
        if args.baseline:
            base, this = (runs[name] for name in trees)
            ratios = [t["rate"] / b["rate"] for b, t in zip(base, this)]
            cpu = [t["cpu_rate"] / b["cpu_rate"] for b, t in zip(base, this)]
            print(f"[bench_data] this tree / baseline: {statistics.median(ratios):.2f}x in samples/s "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}), {statistics.median(cpu):.2f}x in "
                  f"samples per CPU second (rounds: {', '.join(f'{x:.2f}' for x in cpu)})")  # fmt: skip
            diff = differences(*dumps.values())
            print("[bench_data] samples against the baseline's: " + ", ".join(
                f"{k} {v:.4g}" for k, v in diff.items()))  # fmt: skip


if __name__ == "__main__":
    main()
