"""`HIMDataModule`: data sources -> checked, augmented, batched samples for Lightning (docs/data.md)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from e2e_him.data.checks import MAX_LISTED, ON_BAD_FILE, ON_TOO_MANY, SkipLog, apply_policy, check_source
from e2e_him.data.collate import collate
from e2e_him.data.dataset import EpochSampler, HIMDataset, worker_init_fn
from e2e_him.data.transforms import EvalTransform, TrainTransform
from e2e_him.utils.config import plain_hparams

log = logging.getLogger(__name__)

SKIP_LIST_NAME = "skipped_files.txt"


def build_source(spec: Any) -> Any:
    """A source from a config with `_target_` (Hydra), a factory (callable) or a ready source (None: None)."""
    if spec is None:
        return None
    if isinstance(spec, Mapping) or type(spec).__name__ == "DictConfig":
        if "_target_" not in spec:
            raise ValueError(
                f"data source config needs a _target_ (e.g. e2e_him.data.readers.InstanceFolder): {spec}"
            )
        from hydra.errors import InstantiationException
        from hydra.utils import instantiate

        try:
            return instantiate(spec, _recursive_=True)
        except InstantiationException as err:  # show the reader's own error (it names the file) unwrapped
            if err.__cause__ is not None:
                raise err.__cause__ from err
            raise
    if hasattr(spec, "__getitem__") and hasattr(spec, "__len__") and not isinstance(spec, type):
        return spec
    if callable(spec):
        return spec()
    raise TypeError(f"cannot build a data source from {spec!r}")


class HIMDataModule(LightningDataModule):
    """Train / val / test data for E2E-HIM: indexing and checks at set-up, Sec. IV-B augmentation, collation.

    Sources are built in `setup`, not here: each of `train`, `val`, `test` is a config with `_target_`, a
    callable returning a source, or a source (map-style, contract section 1). `test` defaults to `val`.

    Args:
        train, val, test: the sources (see above); None for none.
        root: the data set root the source configs interpolate (`${..root}`); not used by the module itself.
        crop_size: training crop (H, W); paper 640 x 640.
        eval_size: long side of evaluation inputs (aspect kept, padded to a multiple of 32); None: kept.
        composite_prob: probability of pasting another image's people onto a training image (Sec. IV-B).
        composite_scale: scale range of the pasted photo relative to fitting inside the target.
        augment: keyword arguments of `TrainTransform` (flip_prob, affine_prob, scale, rotate, translate,
            shear, contrast_*, gamma_*, saturation_*, resize_long_side); None for its defaults.
        trimap_kernel_train: [min, max] trimap kernel size drawn per training sample.
        trimap_kernel_eval: trimap kernel size for evaluation targets.
        min_visible_pixels, min_visible_fraction: less visible people (after compositing or cropping) are
            dropped.
        max_instances: most people per training image (the model's query count); evaluation splits keep all.
        on_too_many: "error" or "truncate" (keep the largest people, with a warning naming the image).
        on_bad_file: "error" (one error listing every problem) or "skip" (leave them out, listed in a file).
        skip_list_path: the file listing skipped files; None = `skipped_files.txt` in the trainer's log dir
            (or its default_root_dir, or the working directory).
        batch_size: training batch size per device (paper: 1 per GPU on 4 GPUs).
        eval_batch_size: validation / test batch size.
        num_workers, pin_memory, persistent_workers: DataLoader settings (pin_memory only with CUDA).
        multiprocessing_context: "fork", "spawn", "forkserver" or None (the platform's default). With fork the
            main process is set to one OpenCV thread, since forked workers deadlock in OpenCV's thread pool.
        seed: base of the per-sample generators: the same seed gives the same samples.
        check_workers: threads reading file headers during the set-up checks.
        eval_metrics: the metric families that suit this data (`instance`, `imq`, `human`); `e2e_him.eval`
            uses them when its `metrics=auto`. None: instance + IMQ.
    """

    def __init__(
        self,
        train: Any = None,
        val: Any = None,
        test: Any = None,
        *,
        root: str | None = None,
        crop_size: Sequence[int] = (640, 640),
        eval_size: int | None = 640,
        composite_prob: float = 0.5,
        composite_scale: Sequence[float] = (0.5, 1.0),
        augment: Mapping[str, Any] | None = None,
        trimap_kernel_train: Sequence[int] = (7, 25),
        trimap_kernel_eval: int = 15,
        min_visible_pixels: float = 100.0,
        min_visible_fraction: float = 0.1,
        max_instances: int | None = 20,
        on_too_many: str = "error",
        on_bad_file: str = "error",
        skip_list_path: str | None = None,
        batch_size: int = 1,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        multiprocessing_context: str | None = None,
        seed: int = 0,
        check_workers: int = 8,
        eval_metrics: Sequence[str] | None = None,
    ):
        super().__init__()
        if on_bad_file not in ON_BAD_FILE:
            raise ValueError(f"on_bad_file must be one of {ON_BAD_FILE}, got {on_bad_file!r}")
        if on_too_many not in ON_TOO_MANY:
            raise ValueError(f"on_too_many must be one of {ON_TOO_MANY}, got {on_too_many!r}")
        specs = {"train": train, "val": val, "test": test}
        # configs are logged; live objects (sources, factories) are not pickled into checkpoints
        self.save_hyperparameters(ignore=[k for k, v in specs.items() if v is not None and not _is_config(v)])
        plain_hparams(self.hparams)  # checkpoints load with weights_only=True
        self.specs = specs
        self.root = root
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.eval_size = None if eval_size is None else int(eval_size)
        self.composite_prob = composite_prob
        self.composite_scale = tuple(composite_scale)
        self.augment = dict(augment or {})
        self.trimap_kernel_train = tuple(trimap_kernel_train)
        self.trimap_kernel_eval = int(trimap_kernel_eval)
        self.min_visible_pixels = min_visible_pixels
        self.min_visible_fraction = min_visible_fraction
        self.max_instances = max_instances
        self.on_too_many = on_too_many
        self.on_bad_file = on_bad_file
        self.skip_list_path = skip_list_path
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.multiprocessing_context = multiprocessing_context
        self.seed = seed
        self.check_workers = check_workers
        self.eval_metrics = tuple(eval_metrics) if eval_metrics else ("instance", "imq")
        self.train_dataset: HIMDataset | None = None
        self.val_dataset: HIMDataset | None = None
        self.test_dataset: HIMDataset | None = None
        self._skip_log: SkipLog | None = None
        self._resume_at: tuple[int, int] | None = None  # (epoch, samples done) of a resumed run

    # ----------------------------------------------------------------------------------------------- set-up
    def _rank_zero(self) -> bool:
        trainer = getattr(self, "trainer", None)
        return trainer is None or trainer.global_rank == 0

    def skip_log(self) -> SkipLog:
        """The list of skipped files (created or emptied by rank 0 on first use, i.e. only when needed)."""
        if self._skip_log is None:
            if self.skip_list_path:
                path = Path(self.skip_list_path)
            else:
                trainer = getattr(self, "trainer", None)
                folder = (trainer.log_dir or trainer.default_root_dir) if trainer is not None else None
                path = Path(folder or ".") / SKIP_LIST_NAME
            self._skip_log = SkipLog(path.resolve())
            if self._rank_zero():
                self._skip_log.reset()
        return self._skip_log

    def _dataset(self, split: str, train: bool) -> HIMDataset | None:
        spec = self.specs[split]
        if spec is None and split == "test":
            spec = self.specs["val"]
        source = build_source(spec)
        if source is None:
            return None
        desc = f"{split} data ({getattr(source, 'desc', type(source).__name__)})"
        # the query count limits what a model can learn from, not what it is scored on: evaluation keeps
        # every ground-truth person (a missed one counts against recall)
        limit = self.max_instances if train else None
        if len(source) == 0 and not hasattr(source, "entries"):
            raise ValueError(f"{desc}: the source is empty")
        if hasattr(source, "entries"):
            report = check_source(source, max_instances=limit, workers=self.check_workers, desc=desc)
            log_needed = bool(report.problems) and (
                self.on_bad_file == "skip" or len(report.problems) > MAX_LISTED
            )
            apply_policy(
                source,
                report,
                on_bad_file=self.on_bad_file,
                on_too_many=self.on_too_many,
                max_instances=limit,
                skip_log=self.skip_log() if log_needed and self._rank_zero() else None,
                desc=desc,
                tag=f"[{split}] ",
            )
            if len(source) == 0:
                why = "no image found"
                if report.problems:
                    why = f"every image has a problem (listed in {self.skip_log().path})"
                raise ValueError(f"{desc}: no usable image: {why}")
        if train:
            transform = TrainTransform(
                self.crop_size,
                trimap_kernel=self.trimap_kernel_train,
                min_visible_pixels=self.min_visible_pixels,
                min_visible_fraction=self.min_visible_fraction,
                **self.augment,
            )
        else:
            transform = EvalTransform(self.eval_size, self.trimap_kernel_eval)
        return HIMDataset(
            source,
            transform,
            composite_prob=self.composite_prob if train else 0.0,
            composite_scale=self.composite_scale,
            min_visible_pixels=self.min_visible_pixels,
            min_visible_fraction=self.min_visible_fraction,
            max_instances=limit,
            on_too_many=self.on_too_many,
            on_bad_file=self.on_bad_file,
            skip_log_path=str(self.skip_log().path) if self.on_bad_file == "skip" else None,
            seed=self.seed,
        )

    def setup(self, stage: str | None = None) -> None:
        """Build, index and check the sources that `stage` needs (each once)."""
        if stage in ("fit", None) and self.train_dataset is None:
            self.train_dataset = self._dataset("train", train=True)
        if stage in ("fit", "validate", None) and self.val_dataset is None:
            self.val_dataset = self._dataset("val", train=False)
        if stage in ("test", None) and self.test_dataset is None:
            self.test_dataset = self._dataset("test", train=False)

    # ------------------------------------------------------------------------------------------- loaders
    # ------------------------------------------------------------------------------------------ resuming
    def state_dict(self) -> dict[str, int]:
        """The training data's place: (epoch, samples already trained in it), saved in every checkpoint.

        Lightning restores data modules before it builds the loaders, so `train_dataloader` can start a
        resumed run's sampler where the interrupted run stopped (Lightning's own loader-state restore is
        skipped when `configure_optimizers` asks for `estimated_stepping_batches`, as ours does).
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.state.fn != "fit":
            return {}
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        # per rank: each rank's sampler skips its own share (EpochSampler shards the order itself)
        return {"epoch": int(trainer.current_epoch), "samples_done": int(batches * self.batch_size)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state:
            self._resume_at = (int(state["epoch"]), int(state["samples_done"]))
            # the warning that a mid-epoch resume repeats data does not apply: the sampler skips what was seen
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")

    def _loader(self, dataset: HIMDataset, batch_size: int, sampler=None) -> DataLoader:
        if self.num_workers > 0 and self.multiprocessing_context in (None, "fork"):
            # A forked worker deadlocks in OpenCV when the parent has used OpenCV's thread pool (the pool's
            # threads do not survive the fork). With one thread the parent keeps no pool to inherit.
            cv2.setNumThreads(1)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            collate_fn=collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            worker_init_fn=worker_init_fn if self.num_workers > 0 else None,
            multiprocessing_context=self.multiprocessing_context if self.num_workers > 0 else None,
        )

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise RuntimeError("HIMDataModule: no training data (give `train`, and call setup('fit'))")
        rank, world = self._rank_world()
        sampler = EpochSampler(
            len(self.train_dataset), shuffle=True, seed=self.seed, rank=rank, world_size=world
        )
        if self._resume_at is not None:
            sampler.resume_at(*self._resume_at)
            self._resume_at = None
        return self._loader(self.train_dataset, self.batch_size, sampler)

    def _eval_loader(self, dataset: HIMDataset, split: str) -> DataLoader:
        """Under DDP each rank scores every `world_size`-th image, none twice (no padding, unlike Lightning's
        distributed sampler); the metrics' sum states are then added up over ranks, so they equal those of one
        process on the whole split."""
        rank, world = self._rank_world()
        if len(dataset) < world:
            raise ValueError(
                f"{split} data: {len(dataset)} image(s) for {world} processes: each needs at least one"
            )
        sampler = EpochSampler(len(dataset), shuffle=False, rank=rank, world_size=world, pad=False)
        return self._loader(dataset, self.eval_batch_size, sampler)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None:
            return []
        return self._eval_loader(self.val_dataset, "val")

    def test_dataloader(self) -> DataLoader:
        if self.test_dataset is None:
            raise RuntimeError("HIMDataModule: no test data (give `test` or `val`, and call setup('test'))")
        return self._eval_loader(self.test_dataset, "test")


def _is_config(value: Any) -> bool:
    return isinstance(value, Mapping) or type(value).__name__ == "DictConfig"
