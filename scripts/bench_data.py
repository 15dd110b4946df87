"""Throughput of the training data pipeline, in samples per second for one worker (docs/benchmarks.md).

    python scripts/bench_data.py data=synthetic
    python scripts/bench_data.py data=instance_folder data.root=../shared/data/coco_persons
    python scripts/bench_data.py data=single_matte data.root=../shared/data/p3m_pseudo --samples 40

Builds the data module from conf/train.yaml with the overrides, then times N training samples (read,
composite, augment, crop, trimaps, collate) in this process with one OpenCV and one torch thread, as a data-
loader worker runs them, after a warm-up. Arguments with "=" are Hydra overrides.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import cv2
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from e2e_him.data.collate import collate
from e2e_him.utils.config import compose_config


def compose_data(overrides: list[str]) -> DictConfig:
    """The `data` node of conf/train.yaml with the overrides, resolved."""
    data = compose_config("train", overrides).data
    OmegaConf.resolve(data)
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=60, help="timed samples")
    parser.add_argument("--warmup", type=int, default=5, help="untimed samples first")
    args, overrides = parser.parse_known_args(argv)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)

    from hydra.utils import instantiate

    data = compose_data(overrides)
    dm = instantiate(data)
    dm.setup("fit")
    ds = dm.train_dataset
    n = len(ds)
    print(f"[bench_data] {ds.source!r}: crop {dm.crop_size}, composite_prob {dm.composite_prob}")
    for i in range(args.warmup):
        collate([ds[(i % n, 0)]])
    times = []
    people = []
    for i in range(args.samples):
        t0 = time.perf_counter()
        batch = collate([ds[((args.warmup + i) % n, 1)]])
        times.append(time.perf_counter() - t0)
        people.append(int(batch["num_instances"][0]))
    t = np.asarray(times)
    rate = len(t) / t.sum()
    print(
        f"[bench_data] {platform.processor() or platform.machine()}, python {sys.version.split()[0]}, "
        f"torch {torch.__version__}, 1 thread"
    )
    print(
        f"[bench_data] {len(t)} samples: {rate:.2f} samples/s per worker "
        f"(median {np.median(t) * 1e3:.0f} ms, p90 {np.percentile(t, 90) * 1e3:.0f} ms, "
        f"{np.mean(people):.1f} people per sample)"
    )


if __name__ == "__main__":
    main()
