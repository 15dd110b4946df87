"""Time the validation metrics against the test metrics of a training run, per person, on the CPU.

    python scripts/bench_val_metrics.py [--size 1024] [--people 4] [--images 6] [--rounds 3]

Builds `--images` images of `--people` soft-edged people at `--size` px with predictions near them (shifted,
blurred, noisy: every pair a true positive), then times `update` + `compute` of the metric objects that
`E2EHIMModule` builds for validation (default: instance + imq_lite, i.e. IMQ without Grad and Conn) and for
the test (instance + imq), interleaved `--rounds` times (the median is reported, with CPU seconds, which other
jobs on a shared machine do not change). Prints the seconds per person of each, their ratio, what a validation
of HIM-100K's 8,624 people would take on one process, and that the shared keys (IMQ_mse, RQ, ...) agree.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch

from e2e_him.metrics import build_metrics, validation_kinds

HIM100K_VAL_PEOPLE = 8624


def scene(rng: np.random.Generator, size: int, people: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, H, W) ground-truth mattes (soft-edged ellipses side by side) and predictions near them."""
    gts, preds = [], []
    for k in range(people):
        mask = np.zeros((size, size), np.float32)
        cx = int((k + 0.5) * size / people)
        axes = (int(size / people * 0.4), int(size * rng.uniform(0.3, 0.45)))
        cv2.ellipse(mask, (cx, size // 2), axes, 0, 0, 360, 1.0, -1)
        gt = cv2.GaussianBlur(mask, (0, 0), size / 200)
        shifted = np.roll(gt, int(rng.integers(1, size // 100 + 2)), axis=1)
        pred = cv2.GaussianBlur(shifted, (0, 0), size / 300) + rng.normal(0, 0.02, gt.shape).astype(
            np.float32
        )
        gts.append(gt)
        preds.append(np.clip(pred, 0, 1) * (pred > 0.05))
    return torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(gts))


def score(kinds: list[str], scenes: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float, dict]:
    """(wall s, CPU s, metrics) of updating `kinds` on every scene and computing them."""
    metrics = build_metrics(kinds, (0.5, 0.75))
    wall, cpu = time.perf_counter(), time.process_time()
    for pred, gt in scenes:
        for m in metrics.values():
            m.update([pred], [gt])
    values = {k: float(v) for m in metrics.values() for k, v in m.compute().items()}
    return time.perf_counter() - wall, time.process_time() - cpu, values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    scenes = [scene(rng, args.size, args.people) for _ in range(args.images)]
    test_kinds = ["instance", "imq"]
    configs = {"validation (" + " + ".join(validation_kinds(test_kinds)) + ")": validation_kinds(test_kinds)}
    configs["test (" + " + ".join(test_kinds) + ")"] = test_kinds
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in configs}
    values: dict[str, dict] = {}
    for _ in range(args.rounds):  # interleaved, so that load from other jobs hits both alike
        for name, kinds in configs.items():
            wall, cpu, values[name] = score(kinds, scenes)
            times[name].append((wall, cpu))
    people = args.images * args.people
    print(
        f"{args.images} images of {args.size} px, {args.people} people each ({people}), {args.rounds} rounds"
    )
    per_person = {}
    for name, runs in times.items():
        wall = statistics.median(w for w, _ in runs) / people
        cpu = statistics.median(c for _, c in runs) / people
        per_person[name] = cpu
        print(
            f"  {name:32s} {wall * 1e3:8.1f} ms/person wall, {cpu * 1e3:8.1f} ms/person CPU; HIM-100K val "
            f"({HIM100K_VAL_PEOPLE} people) on one process: {cpu * HIM100K_VAL_PEOPLE / 60:6.1f} min"
        )
    val, test = per_person.values()
    print(f"  test / validation CPU time: {test / val:.1f}x")
    (val_values, test_values) = values.values()
    shared = sorted(set(val_values) & set(test_values))
    worst = max(abs(val_values[k] - test_values[k]) for k in shared)
    print(
        f"  {len(shared)} keys in both (IMQ_mse {val_values['IMQ_mse']:.4f}); largest difference {worst:.2e}"
    )
    print(f"  only at test: {', '.join(sorted(set(test_values) - set(val_values)))}")


if __name__ == "__main__":
    main()
