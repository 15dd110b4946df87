"""The fixed batch and table of network outputs of the DDP normalisation test; a torchrun worker as a script.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/losses/ddp_grad_case.py OUT.pt

Each of the W processes takes its own b = B / W images of the fixed batch, wraps `OutputTable` in DDP, and
back-propagates `SetCriterion`'s total on them; rank 0 saves the averaged gradients, the per-rank losses and
the same with the criterion's normalisers left local (`naive_*`), to compare with one process on all B images.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch import nn

import e2e_him.losses.criterion as criterion_module
from e2e_him.data.trimap import trimap_from_alpha
from e2e_him.losses import SetCriterion

B, N, H, W = 4, 5, 32, 32  # images, queries, size
PEOPLE = (1, 3, 2, 4)  # per image: the two halves of the batch hold 4 and 6 people


def fixed_batch() -> dict[str, torch.Tensor]:
    """B images with PEOPLE[i] rectangular people each (soft rims, so the unknown regions are not empty)."""
    g = torch.Generator().manual_seed(0)
    kmax = max(PEOPLE)
    alphas = torch.zeros(B, kmax, H, W)
    for i, k in enumerate(PEOPLE):
        for j in range(k):
            top, left = (int(v) for v in torch.randint(0, H // 2, (2,), generator=g))
            h, w = (int(v) for v in torch.randint(6, H // 2, (2,), generator=g))
            alphas[i, j, max(top - 2, 0) : top + h + 2, max(left - 2, 0) : left + w + 2] = 0.5
            alphas[i, j, top : top + h, left : left + w] = 1.0
    valid = torch.tensor([[j < k for j in range(kmax)] for k in PEOPLE])
    return {
        "alphas": alphas,
        "masks": (alphas > 0).float(),
        "trimaps": trimap_from_alpha(alphas, kernel_size=3),
        "labels": valid.long(),
        "valid": valid,
    }


class OutputTable(nn.Module):
    """Learnable network outputs, one row per image of the fixed batch (contract section 3, one aux layer)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.logits = nn.Parameter(torch.randn(B, N, 2, generator=g))
        self.masks = nn.Parameter(torch.randn(B, N, H // 8, W // 8, generator=g))
        self.aux_logits = nn.Parameter(torch.randn(B, N, 2, generator=g))
        self.aux_masks = nn.Parameter(torch.randn(B, N, H // 8, W // 8, generator=g))
        self.trimaps = nn.Parameter(torch.randn(B, N, 3, H // 2, W // 2, generator=g))
        self.alphas = nn.Parameter(torch.randn(B, N, H, W, generator=g))

    def forward(self, ids: torch.Tensor) -> dict:
        return {
            "pred_logits": self.logits[ids],
            "pred_masks": self.masks[ids],
            "trimap_logits": self.trimaps[ids],
            "alpha_pred": self.alphas[ids].sigmoid(),
            "aux_outputs": [{"pred_logits": self.aux_logits[ids], "pred_masks": self.aux_masks[ids]}],
        }


def loss_and_grads(model: nn.Module, table: OutputTable, ids: torch.Tensor) -> tuple[float, dict]:
    """The criterion's total on the images `ids` and the gradients of every table entry after backward."""
    batch = {k: v[ids] for k, v in fixed_batch().items()}
    table.zero_grad(set_to_none=True)
    loss = SetCriterion()(model(ids), batch)["loss"]
    loss.backward()
    return float(loss.detach()), {k: p.grad.detach().clone() for k, p in table.named_parameters()}


def local_count(local: torch.Tensor) -> torch.Tensor:
    """The normaliser without the all-reduce (what the objective would be without `global_count`)."""
    return local.detach().to(torch.float32).clamp(min=1.0)


def main(out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    ids = torch.arange(rank * B // world, (rank + 1) * B // world)
    table = OutputTable()
    model = nn.parallel.DistributedDataParallel(table)
    loss, grads = loss_and_grads(model, table, ids)
    criterion_module.global_count = local_count
    naive_loss, naive_grads = loss_and_grads(model, table, ids)
    losses = [None] * world
    dist.all_gather_object(losses, (loss, naive_loss))
    if rank == 0:
        torch.save({"world": world, "losses": losses, "grads": grads, "naive_grads": naive_grads}, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
