"""Optimisation recipe of Section IV-B: AdamW (betas 0.9/0.999, decay 5e-4, lr 8e-5), cosine annealing.

Three pieces, each usable from Hydra with `_partial_: true`:

- `build_param_groups(model, ...)` splits the parameters into decay / no-decay and backbone / rest groups;
  every group carries its `weight_decay` and an `lr_mult`.
- `build_adamw(params, lr=8e-5, ...)` builds `torch.optim.AdamW` and sets each group's learning rate to
  `lr * lr_mult` (plain `torch.optim.AdamW` would ignore `lr_mult`).
- `cosine_schedule(optimizer, total_steps, warmup_steps=0, min_lr_ratio=0.0)` returns a `LambdaLR` to be
  stepped after every optimiser step (Lightning: `interval: step`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

# Parameters whose name contains one of these are embeddings: no weight decay (DETR / Mask2Former / timm).
NO_DECAY_KEYWORDS = (
    "pos_embed",
    "position_embedding",
    "absolute_pos_embed",
    "relative_position_bias_table",
    "query_embed",
    "query_feat",
    "query_pos",
    "level_embed",
    "cls_token",
)

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def _no_decay_names(model: nn.Module, no_decay_norm_bias: bool, keywords: Sequence[str]) -> set[str]:
    """Names of the parameters that get no weight decay: embeddings, and (optionally) norms and biases."""
    names: set[str] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            is_embedding = isinstance(module, nn.Embedding) or any(k in full for k in keywords)
            # ndim <= 1 catches biases, norm scales of custom norm classes and layer-scale gammas.
            is_norm_or_bias = isinstance(module, NORM_TYPES) or param.ndim <= 1
            if is_embedding or (no_decay_norm_bias and is_norm_or_bias):
                names.add(full)
    return names


def build_param_groups(
    model: nn.Module,
    weight_decay: float = 5e-4,
    backbone_lr_mult: float = 1.0,
    backbone_prefix: str = "backbone",
    no_decay_norm_bias: bool = True,
    no_decay_keywords: Sequence[str] = NO_DECAY_KEYWORDS,
) -> list[dict[str, Any]]:
    """Parameter groups for the optimiser: decay or not, backbone or not (Section IV-B, Mask2Former's habits).

    Every trainable parameter lands in exactly one group; frozen ones (`requires_grad=False`) in none. A
    parameter belongs to the backbone when its name (as in `model.named_parameters()`) starts with
    `backbone_prefix` or contains `.{backbone_prefix}.`.

    Args:
        model: the network.
        weight_decay: decay of the decayed groups (paper: 5e-4).
        backbone_lr_mult: learning-rate factor of the backbone groups (1.0 = the paper's single rate).
        backbone_prefix: the backbone's attribute name.
        no_decay_norm_bias: no decay on normalisation parameters and biases (all 1-D parameters).
        no_decay_keywords: name parts of embeddings (position / query / level embeddings), never decayed.

    Returns:
        Non-empty groups, each `{"name", "params", "weight_decay", "lr_mult"}`; apply `lr_mult` with
        `build_adamw` (or your own builder).
    """
    no_decay = _no_decay_names(model, no_decay_norm_bias, no_decay_keywords)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        in_backbone = name.startswith(f"{backbone_prefix}.") or f".{backbone_prefix}." in name
        groups.setdefault((in_backbone, name not in no_decay), []).append(param)
    out = []
    for (in_backbone, decay), params in sorted(groups.items()):
        out.append(
            {
                "name": f"{'backbone' if in_backbone else 'head'}_{'decay' if decay else 'no_decay'}",
                "params": params,
                "weight_decay": weight_decay if decay else 0.0,
                "lr_mult": backbone_lr_mult if in_backbone else 1.0,
            }
        )
    return out


def build_adamw(
    params: Iterable[Any],
    lr: float = 8e-5,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 5e-4,
    eps: float = 1e-8,
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """AdamW with the paper's settings (Section IV-B); a group's `lr_mult` scales its learning rate.

    Args:
        params: parameters or groups (e.g. from `build_param_groups`); a group's own `weight_decay` wins.
        lr: base learning rate (paper: 8e-5).
        betas: Adam's betas (paper: 0.9, 0.999).
        weight_decay: decay for groups that do not set their own (paper: 5e-4).
        eps: Adam's epsilon.
        fused: torch's fused AdamW kernel, the same update in one pass over all parameters (None: wherever
            every parameter is a float tensor on the CPU or a CUDA GPU). On one CPU thread the quickstart's
            optimiser step (246 tensors, 3.8 M values) took 7-14 ms against 28-36 ms for torch's default
            per-tensor loop there (docs/benchmarks.md).

    Returns:
        The optimiser.
    """
    params = list(params)
    grouped = bool(params) and isinstance(params[0], dict)
    if grouped:
        params = [{**g, "lr": g.get("lr", lr * g.get("lr_mult", 1.0))} for g in params]
    if fused is None:
        tensors = [p for g in params for p in g["params"]] if grouped else params
        fused = bool(tensors) and all(
            p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors
        )
    return torch.optim.AdamW(
        params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps, fused=fused
    )


def cosine_factor(step: int, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> float:
    """Learning-rate factor at optimiser step `step`: linear warm-up, then cosine annealing to `min_lr_ratio`.

    Warm-up: (step + 1) / warmup_steps for step < warmup_steps (the first step already moves). Then
    min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * t)) / 2 with t = (step - warmup) / (total - warmup),
    clamped to [0, 1], so the factor is 1 right after warm-up and `min_lr_ratio` from `total_steps` on.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    t = min(max((step - warmup_steps) / max(total_steps - warmup_steps, 1), 0.0), 1.0)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def cosine_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine annealing of every group's learning rate (Section IV-B), optionally after a linear warm-up.

    Step it once per optimiser step (Lightning scheduler config `interval: step`); each group's rate is its
    initial rate times `cosine_factor(step, ...)`.

    Args:
        optimizer: the optimiser.
        total_steps: optimiser steps of the whole run (Lightning: `trainer.estimated_stepping_batches`).
        warmup_steps: steps of linear warm-up (paper: none).
        min_lr_ratio: final rate as a fraction of the initial one (paper: 0, `CosineAnnealingLR`'s default).

    Returns:
        The scheduler.
    """
    if not (math.isfinite(float(total_steps)) and total_steps >= 1):
        raise ValueError(
            f"cosine_schedule: total_steps={total_steps} must be a finite number >= 1 "
            "(set trainer.max_steps or trainer.max_epochs)"
        )
    if warmup_steps < 0:
        raise ValueError(f"cosine_schedule: warmup_steps={warmup_steps} must be >= 0")
    if warmup_steps >= total_steps:
        # short debug runs (fast_dev_run, limit_train_batches) must not fail on a warm-up meant for a full run
        shortened = max(int(total_steps) // 10, 0)
        warnings.warn(
            f"cosine_schedule: warmup_steps={warmup_steps} >= total_steps={total_steps}; "
            f"warming up for {shortened} steps instead",
            stacklevel=2,
        )
        warmup_steps = shortened
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"cosine_schedule: min_lr_ratio={min_lr_ratio} must be in [0, 1]")
    total, warmup = int(total_steps), int(warmup_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step, total, warmup, min_lr_ratio)
    )
