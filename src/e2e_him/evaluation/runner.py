"""Scoring many images in worker processes, with a progress bar, and accumulating the results in order.

`run_tasks` maps a scoring function over tasks in a process pool (fork on Linux; one OpenCV / torch thread per
worker, since the workers are the parallelism) and yields the results in task order, so that the sums, and
therefore the metrics, do not depend on the number of workers. `Accumulator` holds one set of metric
objects per group of images (a split, a mask set) and turns them into flat keys.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

import cv2
import torch
from tqdm import tqdm

from e2e_him.evaluation.scoring import ImageResult, ScoreOptions
from e2e_him.metrics.families import build_metrics


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def resolve_workers(workers: int | str | None) -> int:
    """ "auto" / None -> the available cores; an int is used as it is (0 or 1: in this process)."""
    if workers in (None, "auto"):
        return available_cores()
    n = int(workers)
    if n < 0:
        raise ValueError(f"workers={workers}: give 0 (in this process), a positive count or auto")
    return n


def _init_worker() -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[Any],
    options: Any,
    workers: int | str | None = "auto",
    desc: str = "score",
    progress: bool = True,
) -> Iterator[Any]:
    """Yield `fn(task, options)` for every task, in order, computed by `workers` processes.

    Args:
        fn: a module-level function (it is pickled by name).
        tasks: picklable task objects.
        options: picklable options passed to every call.
        workers: process count; 0 or 1 computes in this process (no pool).
        desc: progress bar label.
        progress: show a tqdm bar (on stderr).
    """
    n = min(resolve_workers(workers), max(len(tasks), 1))
    bar = tqdm(total=len(tasks), desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
    call = partial(fn, options=options)
    try:
        if n <= 1:
            for task in tasks:
                yield call(task)
                bar.update()
            return
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        # a forked worker deadlocks in OpenCV's thread pool if the parent's pool exists: keep one thread
        previous = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            with ProcessPoolExecutor(n, mp_context=mp.get_context(method), initializer=_init_worker) as pool:
                for result in pool.map(call, tasks, chunksize=1):
                    yield result
                    bar.update()
        finally:
            cv2.setNumThreads(previous)
    finally:
        bar.close()


class MetricSet:
    """The metric objects of one group of images (`metrics.build_metrics`, the builder training's test uses
    too), accumulated from worker results."""

    def __init__(self, options: ScoreOptions):
        self.metrics = build_metrics(
            options.metrics,
            options.iou_thresholds,
            binarize_threshold=options.binarize_threshold,
            grad_conn=options.grad_conn,
            messddt=options.messddt,
        )
        self.images = 0

    def _accumulate(self, kind: str, stats) -> None:
        if kind in self.metrics and stats is not None:
            self.metrics[kind].accumulate(stats)

    def add(self, result: ImageResult) -> None:
        if not result.scored:
            return
        self.images += 1
        for kind, stats in (("instance", result.match), ("imq", result.imq), ("human", result.human),
                            ("maggie", result.maggie)):  # fmt: skip
            self._accumulate(kind, stats)

    def add_video(self, result) -> None:
        """A `video.VideoResult`: its frames as images, its per-(frame, person) and temporal values."""
        if not result.scored:
            return
        for frame in result.frames:
            self.add(frame)
        self._accumulate("maggie", result.maggie or None)
        self._accumulate("temporal", result.temporal)

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for metric in self.metrics.values():
            out.update({k: float(v) for k, v in metric.compute().items()})
        return out


class Accumulator:
    """Metric sets per group: "" is every image; each image also goes to its own group (e.g. its split)."""

    def __init__(self, options: ScoreOptions):
        self.options = options
        self.sets: dict[str, MetricSet] = {"": MetricSet(options)}

    def _sets(self, groups: Iterable[str]) -> list[MetricSet]:
        for g in {"", *groups}:
            if g not in self.sets:
                self.sets[g] = MetricSet(self.options)
        return [self.sets[g] for g in dict.fromkeys(["", *groups])]

    def add(self, result: ImageResult, groups: Iterable[str] = ()) -> None:
        for s in self._sets(groups):
            s.add(result)

    def add_video(self, result, groups: Iterable[str] = ()) -> None:
        for s in self._sets(groups):
            s.add_video(result)

    def compute(self) -> dict[str, dict[str, float]]:
        """{group: flat metrics}, the "" group first."""
        return {g: s.compute() for g, s in self.sets.items()}

    def images(self) -> dict[str, int]:
        return {g: s.images for g, s in self.sets.items()}
