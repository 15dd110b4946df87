"""A source of raw records wrapped into training or evaluation samples, with per-sample seeding.

Every random choice of a sample (the compositing partner, the augmentation, the crop, the trimap kernel) comes
from a generator seeded by (seed, epoch, index), so a sample does not depend on the worker that builds it nor
on the order in which workers run. `EpochSampler` hands each index to the workers together with the epoch.

When the transform resizes photos (`TrainTransform.resize_long_side`) and the source can read a photo's size
and decode it resized (`IndexedSource.image_size`, `load`), a sample is planned before anything is decoded:
the same draws as compositing at the photo's own size and resizing after, in the same order, but the photos
and mattes are decoded straight at the size they are resized to and the people pasted there
(`composite.scale_region`). The result differs from the full-size order only by resampling (docs/data.md).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from e2e_him.data.checks import BadSampleError, SkipLog, TooManyInstancesError
from e2e_him.data.composite import (
    composite_instances,
    largest_instances,
    largest_record,
    paste_geometry,
    paste_instances,
    pasted_slots,
    scale_region,
)
from e2e_him.data.io import ImageReadError

log = logging.getLogger(__name__)

LOAD_ERRORS = (ImageReadError, BadSampleError, OSError)


class EpochSampler(Sampler):
    """Yields (index, epoch) pairs, shuffled by (seed, epoch) when `shuffle`; Lightning calls `set_epoch`.

    With `world_size` > 1 (DDP; set `use_distributed_sampler: false`) each rank takes every `world_size`-th
    sample of the epoch's order, starting at `rank`: the shards are disjoint and together hold the epoch.
    With `pad` (training) the order is first padded by wrapping around to a multiple of `world_size`, so that
    every rank runs the same number of steps (DDP needs that; the first `-num_samples % world_size` samples of
    the order are seen twice); without it (evaluation) no sample is repeated and shards differ by at most one.
    `resume_at(epoch, start)` makes the next pass over `epoch` begin at position `start` of this rank's share,
    so that a run resumed mid-epoch sees exactly the samples the interrupted run had not seen yet.
    """

    def __init__(
        self,
        num_samples: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"EpochSampler: rank {rank} is not in [0, world_size={world_size})")
        self.num_samples = int(num_samples)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.pad = bool(pad)
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, start: int) -> None:
        self._resume = (int(epoch), int(start))

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of `epoch`, in the order they are drawn."""
        if self.shuffle:
            return np.random.default_rng([self.seed, epoch, 0x5A]).permutation(self.num_samples)
        return np.arange(self.num_samples)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.order(self.epoch)
        if self.world_size > 1:
            if self.pad:
                order = np.resize(order, len(self) * self.world_size)
            order = order[self.rank :: self.world_size]
        if self._resume is not None and self._resume[0] == self.epoch:
            order = order[self._resume[1] :]
        self._resume = None
        return iter([(int(i), self.epoch) for i in order])

    def __len__(self) -> int:
        if self.pad:
            return -(-self.num_samples // self.world_size)
        return len(range(self.rank, self.num_samples, self.world_size))


def worker_init_fn(worker_id: int) -> None:
    """One thread per data-loader worker for OpenCV and torch: the workers are the parallelism."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class HIMDataset(Dataset):
    """Training or evaluation samples (docs/contracts.md section 2) from a map-style source of raw records.

    Args:
        source: `__len__` and `__getitem__(i) -> record` (contract section 1).
        transform: `transform(record, rng) -> sample` (`TrainTransform` or `EvalTransform`).
        composite_prob: probability of pasting the people of another random record (training, Sec. IV-B).
        composite_scale: random scale range of the pasted photo, relative to fitting inside the target.
        min_visible_pixels, min_visible_fraction: people below these after compositing are dropped.
        max_instances: the most people a sample may hold (the model's query count); None = no limit.
        on_too_many: "error" refuses a record with more people (naming it), "truncate" keeps the largest.
        on_bad_file: "error" raises when a record cannot be loaded; "skip" records the file in
            `skip_log_path`, logs it and deterministically substitutes another index.
        skip_log_path: file that receives `path<TAB>reason` lines of files skipped at load time.
        seed: the base of every per-sample generator.
        max_substitutions: how many substitutes are tried before giving up.
    """

    def __init__(
        self,
        source: Sequence,
        transform,
        *,
        composite_prob: float = 0.0,
        composite_scale: Sequence[float] = (0.5, 1.0),
        min_visible_pixels: float = 100.0,
        min_visible_fraction: float = 0.1,
        max_instances: int | None = None,
        on_too_many: str = "error",
        on_bad_file: str = "error",
        skip_log_path: str | None = None,
        seed: int = 0,
        max_substitutions: int = 20,
    ):
        self.source = source
        self.transform = transform
        self.composite_prob = float(composite_prob)
        self.composite_scale = (float(composite_scale[0]), float(composite_scale[1]))
        self.min_visible_pixels = float(min_visible_pixels)
        self.min_visible_fraction = float(min_visible_fraction)
        self.max_instances = max_instances
        self.on_too_many = on_too_many
        self.on_bad_file = on_bad_file
        self.skip_log_path = skip_log_path
        self.seed = int(seed)
        self.max_substitutions = int(max_substitutions)
        self._bad: set[int] = set()
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.source)

    def _path_of(self, index: int) -> str:
        entries = getattr(self.source, "entries", None)
        return str(entries[index].image) if entries is not None else f"{self.source!r}[{index}]"

    def _skip(self, index: int, err: Exception) -> None:
        self._bad.add(index)
        path = self._path_of(index)
        log.warning("skipping %s (on_bad_file=skip): %s", path, err)
        if self.skip_log_path:
            SkipLog(self.skip_log_path).add(path, str(err).replace("\n", " "))

    def _limit(self, record: dict) -> dict:
        """Apply `max_instances` to a loaded record (error or keep the largest people)."""
        k = len(record["alphas"])
        if self.max_instances is None or k <= self.max_instances:
            return record
        name = record["name"]
        if self.on_too_many == "error":
            raise TooManyInstancesError(
                f"image {name} ({self._source_desc()}) holds {k} people but the model has "
                f"{self.max_instances} queries (max_instances); set on_too_many=truncate to keep the "
                "largest, or raise the query count"
            )
        if name not in self._warned:  # indexed sources were already reported at set-up
            self._warned.add(name)
            message = f"image {name} holds {k} people; keeping the {self.max_instances} largest"
            if hasattr(self.source, "entries"):
                log.debug(message)
            else:
                warnings.warn(message, stacklevel=2)
        keep = largest_instances(record["alphas"], self.max_instances)
        masks = record["masks"][keep] if record["masks"] is not None else None
        return {**record, "alphas": record["alphas"][keep], "masks": masks}

    def _source_desc(self) -> str:
        return getattr(self.source, "desc", type(self.source).__name__)

    def _load(self, index: int) -> dict:
        return self._limit(self.source[index])

    def _partner(self, index: int, rng: np.random.Generator) -> int | None:
        """The record whose people are pasted onto `index`'s, or None (draws the decision and the partner)."""
        n = len(self)
        if self.composite_prob > 0 and n > 1 and rng.random() < self.composite_prob:
            partner = (index + int(rng.integers(1, n))) % n
            if partner not in self._bad:
                return partner
        return None

    def _try(self, partner: int, read):
        """`read(partner)`, or None when the partner cannot be read and bad files are skipped."""
        try:
            return read(partner)
        except LOAD_ERRORS as err:
            if self.on_bad_file == "error":
                raise
            self._skip(partner, err)
            return None

    def _plans(self) -> bool:
        """Whether samples are planned from the photos' sizes and decoded resized (see the module doc)."""
        resizes = getattr(self.transform, "resize_long_side", None) is not None
        return resizes and all(hasattr(self.source, a) for a in ("image_size", "load", "num_people"))

    def _build(self, index: int, epoch: int) -> dict:
        rng = np.random.default_rng([self.seed, epoch, index])
        if self._plans():
            return self._build_resized(index, rng)
        record = self._load(index)
        partner = self._partner(index, rng)
        paste = self._try(partner, self._load) if partner is not None else None
        if paste is not None:
            record = composite_instances(
                record,
                paste,
                rng,
                scale_range=self.composite_scale,
                min_visible_pixels=self.min_visible_pixels,
                min_visible_fraction=self.min_visible_fraction,
                max_instances=self.max_instances,
            )
        return self.transform(record, rng)

    def _build_resized(self, index: int, rng: np.random.Generator) -> dict:
        """`_build` with every photo decoded at the size the transform resizes it to (the draws of `_build`,
        in its order: partner, paste geometry, resized size, then the transform's)."""
        size0 = self.source.image_size(index)
        people = self._people(index)
        partner, region = self._partner(index, rng), None
        paste_size = self._try(partner, self.source.image_size) if partner is not None else None
        if paste_size is not None:
            slots = pasted_slots(people, self._people(partner), self.max_instances)
            if slots:
                region = paste_geometry(size0, paste_size, rng, self.composite_scale)
        size = self.transform.draw_size(size0, rng)
        record = self._limit(self.source.load(index, size))
        if region is not None:
            scale = (size[0] / size0[0], size[1] / size0[1])
            y0, x0, h, w = scale_region(region, scale, size)
            paste = self._try(partner, lambda i: self._limit(self.source.load(i, (h, w))))
            if paste is not None:
                record = paste_instances(
                    record,
                    largest_record(paste, slots),
                    (y0, x0, h, w),
                    min_visible_pixels=self.min_visible_pixels,
                    min_visible_fraction=self.min_visible_fraction,
                    area_scale=scale[0] * scale[1],
                )
        return self.transform.augment(record, rng, size0)

    def _people(self, index: int) -> int:
        """People of record `index` after `max_instances` (from the index, nothing decoded)."""
        k = self.source.num_people(index)
        return k if self.max_instances is None else min(k, self.max_instances)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, tuple | list) else (int(key), 0)
        n = len(self)
        current = index
        for attempt in range(self.max_substitutions + 1):
            if current not in self._bad:
                try:
                    return self._build(current, epoch)
                except LOAD_ERRORS as err:
                    if self.on_bad_file == "error":
                        raise
                    self._skip(current, err)
            # a deterministic substitute, drawn from (seed, epoch, index, attempt)
            sub_rng = np.random.default_rng([self.seed, epoch, index, attempt + 1])
            current = (index + int(sub_rng.integers(1, n))) % n if n > 1 else index
        raise RuntimeError(
            f"{self._source_desc()}: index {index} and {self.max_substitutions} substitutes could not be "
            "loaded; "
            f"see {self.skip_log_path or 'the log'}"
        )
