"""`TimedCheckpoint`: the rolling checkpoint of GPU runs, written by time and asked about every few steps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class TimedCheckpoint(ModelCheckpoint):
    """Lightning's `ModelCheckpoint` with `train_time_interval` (e.g. 30 minutes), whose clock is read only
    every `check_every_n_steps` optimiser steps.

    Lightning's own time trigger broadcasts rank 0's decision to every process after every training batch,
    so that the processes agree (under DDP a collective and a wait for the device at every step); here that
    happens every `check_every_n_steps` steps, at the same steps on every process (the global step is the
    same everywhere), and the checkpoint is written at most that many steps after its time came.

    Args:
        train_time_interval: how often to write the checkpoint (`datetime.timedelta`).
        check_every_n_steps: how often to look at the clock, in optimiser steps.
        **kwargs: `ModelCheckpoint`'s other arguments (`dirpath`, `filename`, `save_top_k`, ...).
    """

    def __init__(self, train_time_interval: timedelta, check_every_n_steps: int = 50, **kwargs: Any) -> None:
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1, got {check_every_n_steps}")
        super().__init__(train_time_interval=train_time_interval, **kwargs)
        self.check_every_n_steps = int(check_every_n_steps)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % self.check_every_n_steps == 0:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
