"""A callback that records, in each DDP process, which samples it trained and scored and which checkpoint
files it wrote; the DDP tests add it with `+callbacks.probe._target_=ddp_probe.ShardProbe` (PYTHONPATH)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import lightning as L


class ShardProbe(L.Callback):
    """Writes `<dirpath>/rank<R>_<pid>.json`: train (epoch, step, names) per batch, val / test names, the
    checkpoint paths this process saved, and its world size, when each stage ends."""

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self.record: dict[str, list] = defaultdict(list)

    def setup(self, trainer, pl_module, stage):
        io = trainer.strategy.checkpoint_io
        if getattr(io, "probed", False):
            return
        save = io.save_checkpoint

        def recorded_save(checkpoint, path, storage_options=None):
            self.record["saved"].append(str(path))
            return save(checkpoint, path, storage_options=storage_options)

        io.save_checkpoint, io.probed = recorded_save, True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        names = [m["name"] for m in batch["meta"]]
        self.record["train"].append([trainer.current_epoch, trainer.global_step, names])

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.record[f"val_{trainer.current_epoch}"].extend(m["name"] for m in batch["meta"])

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.record["test"].extend(m["name"] for m in batch["meta"])

    def teardown(self, trainer, pl_module, stage):
        self.dirpath.mkdir(parents=True, exist_ok=True)
        out = {**self.record, "rank": trainer.global_rank, "world_size": trainer.world_size}
        (self.dirpath / f"rank{trainer.global_rank}_{os.getpid()}.json").write_text(json.dumps(out))
