"""Time `e2e_him.eval pred_dir=...` on a synthetic stand-in for HIM2K (1,000-2,000 px photos, 1-6 people).

    python scripts/bench_eval.py [--images 2000] [--measure 100] [--workers 1 2] [--rounds 2] [--out DIR]

Writes `--measure` images (photo, one matte per person, and a prediction folder per image: the ground truth
shifted, blurred, dimmed, with missed and extra people) at HIM2K's sizes, then scores them with the metric
families of `data=him2k` (Eq. 20, IMQ, MaGGIe's errors) for each worker count, and with fewer families to
show where the time goes. Configurations run interleaved, `--rounds` times, and the median is reported. On a
shared machine wall time depends on the other jobs; the CPU seconds per image (this process and its workers)
do not, and give the time on free cores (images are independent: W free cores take CPU time / W). The time of
`--images` images is extrapolated from seconds per image. Also times the gradient and connectivity sums of
one pair on its bounding box against the whole image.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from e2e_him.data.io import write_alpha
from e2e_him.data.readers import InstanceFolder
from e2e_him.data.synthetic import SyntheticPeople
from e2e_him.evaluation import ScoreOptions, score_images
from e2e_him.evaluation.tasks import entry_task
from e2e_him.metrics.errors import connectivity_error_map, grad_conn_sums, gradient_error_map

ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0)
FULL = "instance + IMQ + MaGGIe (data=him2k)"
CONFIGS = {  # name: (metric families, Grad and Conn of MaGGIe's errors)
    "instance (Eq. 20)": (("instance",), False),
    "instance + IMQ": (("instance", "imq"), True),
    FULL: (("instance", "imq", "maggie"), True),
}


def image_size(rng: np.random.Generator) -> tuple[int, int]:
    """(H, W) with the long side uniform in 1,000-2,000 px, a common aspect ratio, either orientation."""
    long_side = int(rng.integers(1000, 2001))
    short = round(long_side / ASPECTS[int(rng.integers(len(ASPECTS)))])
    return (long_side, short) if rng.random() < 0.35 else (short, long_side)


def predicted(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """A plausible prediction of one matte: shifted a few pixels, edges blurred, dimmed, noisy edges."""
    h, w = alpha.shape
    dy, dx = rng.integers(-6, 7, 2)
    out = cv2.warpAffine(alpha, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h))
    sigma = rng.uniform(0.3, 2.5)
    out = cv2.GaussianBlur(out, (0, 0), sigma)
    edge = (out > 0.02) & (out < 0.98)
    out[edge] += rng.normal(0, 0.05, int(edge.sum())).astype(np.float32)
    return np.clip(out * rng.uniform(0.85, 1.0), 0, 1)


def make_data(root: Path, n: int, seed: int) -> tuple[Path, int]:
    """`n` images in the HIM2K layout under root/data and their predictions under root/pred; people count."""
    rng = np.random.default_rng(seed)
    people = 0
    for i in range(n):
        h, w = image_size(rng)
        k = int(rng.integers(1, 7))
        scene = SyntheticPeople(1, (h, w), k, k, seed=seed * 100_003 + i, supersample=2).render(0)
        stem = f"{i:05d}"
        cv2.imwrite(
            str(root / "data" / "images" / f"{stem}.jpg"), cv2.cvtColor(scene["image"], cv2.COLOR_RGB2BGR)
        )
        kept = []
        for p, a in enumerate(scene["alphas"]):
            write_alpha(root / "data" / "alphas" / stem / f"{p:02d}.png", a)
            if rng.random() > 0.1:  # 10 % of the people are missed
                kept.append(predicted(rng, a))
        if rng.random() < 0.1 and len(scene["alphas"]):  # 10 % of the images get a wrong extra person
            kept.append(np.roll(scene["alphas"][0], w // 4, axis=1))
        folder = root / "pred" / stem
        folder.mkdir(parents=True, exist_ok=True)
        for p, a in enumerate(kept):
            write_alpha(folder / f"{p:02d}.png", a)
        people += len(scene["alphas"])
    return root / "data", people


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes), in seconds."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def time_box_trick(root: Path, pairs: int = 10) -> tuple[float, float]:
    """Seconds per pair of the DIM gradient + connectivity sums: on the bounding box, on the whole image."""
    from e2e_him.data.io import read_alpha

    gts = sorted((root / "data" / "alphas").glob("*/00.png"))[:pairs]
    box, full = [], []
    for g in gts:
        gt = read_alpha(g)
        pred = (
            read_alpha(root / "pred" / g.parent.name / "00.png")
            if (root / "pred" / g.parent.name / "00.png").is_file()
            else gt
        )
        t0 = time.perf_counter()
        grad_conn_sums(pred, gt)
        t1 = time.perf_counter()
        gradient_error_map(pred, gt).sum()
        connectivity_error_map(pred, gt).sum()
        t2 = time.perf_counter()
        box.append(t1 - t0)
        full.append(t2 - t1)
    return statistics.median(box), statistics.median(full)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000, help="the run to extrapolate to (HIM2K: 2,000)")
    parser.add_argument("--measure", type=int, default=100, help="images actually written and scored")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the data here (default: a temp folder)")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        (root / "data" / "images").mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        data, people = make_data(root, args.measure, args.seed)
        made = time.perf_counter() - t0
        entries = InstanceFolder(data).entries
        sizes = [cv2.imread(str(e.image), cv2.IMREAD_REDUCED_GRAYSCALE_8).shape for e in entries]
        mpx = np.mean([h * w * 64 / 1e6 for h, w in sizes])
        print(f"{len(entries)} images ({made:.0f} s to make), {people} people, mean {mpx:.2f} Mpx")
        tasks = [entry_task(e, root / "pred") for e in entries]
        most = max(args.workers)  # every family at the most workers, the full set at each worker count
        runs = list(dict.fromkeys([(name, most) for name in CONFIGS] + [(FULL, w) for w in args.workers]))
        wall: dict[tuple[str, int], list[float]] = {r: [] for r in runs}
        cpu: dict[tuple[str, int], list[float]] = {r: [] for r in runs}
        for _ in range(args.rounds):
            for name, w in runs:  # interleaved, so that a slow spell of the shared machine hits every config
                metrics, grad_conn = CONFIGS[name]
                options = ScoreOptions(metrics=metrics, grad_conn=grad_conn)
                t0, c0 = time.perf_counter(), cpu_seconds()
                score_images(tasks, options, workers=w, progress=False)
                wall[(name, w)].append(time.perf_counter() - t0)
                cpu[(name, w)].append(cpu_seconds() - c0)
        load = os.getloadavg()[0]
        print(f"\nload average during the run: {load:.1f} on {os.cpu_count()} cores")
        n = args.images
        head = f"| metrics | workers | wall s / image | CPU s / image | {n} images: wall | on W free cores |"
        print("\n" + head + "\n|---|---|---|---|---|---|")
        for key in runs:
            w_per = statistics.median(wall[key]) / len(tasks)
            c_per = statistics.median(cpu[key]) / len(tasks)
            cores = max(key[1], 1)  # W = the worker count (images are independent: CPU time / W)
            free = c_per * args.images / cores / 60
            print(
                f"| {key[0]} | {key[1]} | {w_per:.3f} | {c_per:.3f} | {w_per * args.images / 60:.1f} min "
                f"| {free:.1f} min (W = {cores}) |"
            )
        box, full = time_box_trick(root)
        print(f"\nDIM Grad + Conn sums of one pair: {box * 1e3:.0f} ms on its bounding box,", end=" ")
        print(f"{full * 1e3:.0f} ms on the whole image")


if __name__ == "__main__":
    main()
