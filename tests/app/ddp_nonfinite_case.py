"""A torchrun worker: two processes train a table of network outputs with Lightning's DDP (gloo) for three
steps; at step 1 the outputs of rank 1 alone turn NaN. Rank 0 saves what each process saw to OUT.pt.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/app/ddp_nonfinite_case.py OUT.pt
"""

from __future__ import annotations

import os
import sys
from functools import partial

import lightning as L
import torch
import torch.distributed as dist
from torch import nn

from e2e_him.data.trimap import trimap_from_alpha
from e2e_him.losses import SetCriterion
from e2e_him.models.module import E2EHIMModule

B, N, H = 2, 4, 32  # images per process, queries, size
POISONED = (1, 1)  # (rank, step) whose outputs are NaN


class OutputTable(nn.Module):
    """Learnable outputs (contract section 3, one aux layer) for image ids 0..3, read from the image's first
    pixel; `poison` makes this process's outputs NaN."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.logits = nn.Parameter(torch.randn(4, N, 2, generator=g))
        self.masks = nn.Parameter(torch.randn(4, N, H // 8, H // 8, generator=g))
        self.aux_masks = nn.Parameter(torch.randn(4, N, H // 8, H // 8, generator=g))
        self.trimaps = nn.Parameter(torch.randn(4, N, 3, H // 2, H // 2, generator=g))
        self.alphas = nn.Parameter(torch.randn(4, N, H, H, generator=g))
        self.poison = False

    def forward(self, image: torch.Tensor) -> dict:
        ids = image[:, 0, 0, 0].long()
        masks = self.masks[ids] * (float("nan") if self.poison else 1.0)
        return {
            "pred_logits": self.logits[ids],
            "pred_masks": masks,
            "trimap_logits": self.trimaps[ids],
            "alpha_pred": self.alphas[ids].sigmoid(),
            "aux_outputs": [{"pred_logits": self.logits[ids] * 0.5, "pred_masks": self.aux_masks[ids]}],
        }


def batch_of(ids: list[int]) -> dict:
    """A complete batch of images `ids`, two rectangular people each."""
    alphas = torch.zeros(len(ids), 2, H, H)
    for b, i in enumerate(ids):
        alphas[b, 0, 2 + i : 14 + i, 4:16] = 1.0
        alphas[b, 1, 16:28, 10 + i : 26] = 1.0
    image = torch.zeros(len(ids), 3, H, H)
    image[:, 0, 0, 0] = torch.tensor(ids, dtype=torch.float32)
    return {
        "image": image,
        "alphas": alphas,
        "masks": (alphas >= 0.5).float(),
        "trimaps": trimap_from_alpha(alphas, 3),
        "labels": torch.ones(len(ids), 2, dtype=torch.long),
        "valid": torch.ones(len(ids), 2, dtype=torch.bool),
        "meta": [{"name": str(i)} for i in ids],
    }


class Recorder(L.Callback):
    """Poisons rank 1's outputs at step 1 and keeps the parameters after every step."""

    def __init__(self) -> None:
        self.after: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        pl_module.net.poison = (trainer.global_rank, batch_idx) == POISONED

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after.append(torch.cat([p.detach().flatten() for p in pl_module.net.parameters()]).clone())


def main(out: str) -> None:
    torch.set_num_threads(1)
    table = OutputTable()
    start = torch.cat([p.detach().flatten() for p in table.parameters()]).clone()
    module = E2EHIMModule(table, SetCriterion(), partial(torch.optim.AdamW, lr=0.05), weight_decay=0.0)
    recorder = Recorder()
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=3, precision="32-true", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, use_distributed_sampler=False, callbacks=[recorder],
    )  # fmt: skip
    rank = int(os.environ["RANK"])  # torchrun's; the process group starts inside fit
    ids = [2 * rank, 2 * rank + 1]
    loader = torch.utils.data.DataLoader([batch_of(ids)] * 3, batch_size=None)
    trainer.fit(module, train_dataloaders=loader)
    optimizer = trainer.optimizers[0]
    steps = sorted({int(s["step"]) for s in optimizer.state.values()})
    record = {"start": start, "after": recorder.after, "skipped": module.skipped_steps, "adam_steps": steps}
    gathered = [None] * trainer.world_size
    dist.all_gather_object(gathered, record)
    if trainer.global_rank == 0:
        torch.save(gathered, out)


if __name__ == "__main__":
    main(sys.argv[1])
