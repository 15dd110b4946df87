"""Resuming an interrupted run continues its steps and its data order; seeds make runs repeatable."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from e2e_him.data.dataset import EpochSampler
from e2e_him.train import resolve_ckpt_path
from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import ConfigError, build, build_dict

pytestmark = pytest.mark.slow


class Interrupted(Exception):
    pass


class Recorder(L.Callback):
    """Records (global step, sample names, loss) per batch; raises `Interrupted` after `stop_after`."""

    def __init__(self, stop_after: int | None = None):
        self.stop_after = stop_after
        self.steps: list[int] = []
        self.names: list[list[str]] = []
        self.losses: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.steps.append(trainer.global_step)
        self.names.append([m["name"] for m in batch["meta"]])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        if self.stop_after is not None and trainer.global_step >= self.stop_after:
            raise Interrupted  # before the checkpoint callbacks of this step, as a kill would be


def _fit(run_dir: Path, max_steps: int, stop_after: int | None = None, ckpt_path: str | None = None):
    cfg = compose_config(
        "train",
        [
            "debug=smoke",
            "logger=none",
            "data.train.num_samples=12",  # 6 steps per epoch: the runs cross an epoch boundary
            f"trainer.max_steps={max_steps}",
            "trainer.max_epochs=5",
            "callbacks.step_checkpoint.every_n_train_steps=2",
            "callbacks.val_image_panels.dirpath=null",
            "~callbacks.model_summary",
            "~callbacks.lr_monitor",  # no logger here
        ],
        output_dir=run_dir,
    )
    L.seed_everything(cfg.seed, workers=True)
    module, datamodule = build(cfg.model, "model"), build(cfg.data, "data")
    recorder = Recorder(stop_after)
    trainer = build(
        cfg.trainer, "trainer", callbacks=[*build_dict(cfg.callbacks, "callbacks"), recorder], logger=False
    )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except Interrupted:
        pass
    return recorder, trainer


def test_resume_continues_step_count_and_data_order(tmp_path: Path):
    reference, _ = _fit(tmp_path / "reference", max_steps=9)
    assert reference.steps == list(range(9))

    run = tmp_path / "interrupted"
    first, _ = _fit(run, max_steps=9, stop_after=3)  # steps 0-2 trained, last.ckpt written after step 2
    assert first.steps == [0, 1, 2]
    last = resolve_ckpt_path("last", run)
    assert torch.load(last, weights_only=True)["global_step"] == 2

    resumed, trainer = _fit(run, max_steps=9, ckpt_path=last)
    assert resumed.steps == list(range(2, 9))  # the step count continues
    assert trainer.global_step == 9
    # the same samples in the same order as the uninterrupted run, across the epoch boundary at step 6
    assert resumed.names == reference.names[2:]


def test_same_seed_same_first_losses(tmp_path: Path):
    a, _ = _fit(tmp_path / "a", max_steps=3)
    b, _ = _fit(tmp_path / "b", max_steps=3)
    assert a.names == b.names
    assert a.losses == pytest.approx(b.losses, rel=1e-5)


def test_ckpt_path_last_needs_the_run_dir(tmp_path: Path):
    with pytest.raises(ConfigError, match="run_dir"):
        resolve_ckpt_path("last", tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), tmp_path)


@pytest.mark.parametrize("shuffle", [True, False])
def test_epoch_sampler_resumes_mid_epoch(shuffle: bool):
    sampler = EpochSampler(10, shuffle=shuffle, seed=3)
    sampler.set_epoch(2)
    full = [i for i, _ in sampler]
    sampler.resume_at(2, 4)
    assert [i for i, _ in sampler] == full[4:]
    assert [i for i, _ in sampler] == full  # the skip applies once
    sampler.resume_at(1, 4)  # a resume point of another epoch does not apply
    assert [i for i, _ in sampler] == full


def test_epoch_sampler_shards_across_ranks_and_resumes_each():
    shards = [EpochSampler(10, seed=1, rank=r, world_size=3) for r in range(3)]
    for s in shards:
        s.set_epoch(4)
    parts = [[i for i, _ in s] for s in shards]
    assert all(len(p) == len(s) == 4 for p, s in zip(parts, shards))  # 10 padded to 12
    assert sorted(set(parts[0] + parts[1] + parts[2])) == list(range(10))
    shards[1].resume_at(4, 2)
    assert [i for i, _ in shards[1]] == parts[1][2:]
    with pytest.raises(ValueError, match="rank"):
        EpochSampler(10, rank=2, world_size=2)
