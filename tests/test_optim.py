"""Parameter groups, the AdamW builder and the cosine schedule of Section IV-B."""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from e2e_him.models.optim import build_adamw, build_param_groups, cosine_factor, cosine_schedule


class Toy(nn.Module):
    """A backbone (conv + BatchNorm) and a head with every kind of parameter the real network has."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.gn = nn.GroupNorm(2, 4, affine=True)
        self.query_embed = nn.Embedding(5, 4)
        self.decoder = nn.Module()
        self.decoder.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.decoder.level_embed = nn.Parameter(torch.zeros(3, 4))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _names(model: nn.Module, group: dict) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_groups_split_decay_and_backbone():
    model = Toy()
    groups = build_param_groups(model, weight_decay=5e-4, backbone_lr_mult=0.1)
    by_name = {g["name"]: g for g in groups}
    assert _names(model, by_name["backbone_decay"]) == {"backbone.0.weight"}
    assert _names(model, by_name["backbone_no_decay"]) == {
        "backbone.0.bias",
        "backbone.1.weight",
        "backbone.1.bias",
    }
    assert _names(model, by_name["head_decay"]) == {"proj.weight"}
    assert _names(model, by_name["head_no_decay"]) == {
        "proj.bias", "norm.weight", "norm.bias", "gn.weight", "gn.bias", "query_embed.weight",
        "decoder.pos_embed", "decoder.level_embed",
    }  # fmt: skip
    assert by_name["backbone_decay"]["weight_decay"] == 5e-4 and by_name["head_decay"]["weight_decay"] == 5e-4
    assert (
        by_name["backbone_no_decay"]["weight_decay"] == 0.0
        and by_name["head_no_decay"]["weight_decay"] == 0.0
    )
    assert by_name["backbone_decay"]["lr_mult"] == 0.1 and by_name["backbone_no_decay"]["lr_mult"] == 0.1
    assert by_name["head_decay"]["lr_mult"] == 1.0


def test_every_trainable_parameter_in_exactly_one_group():
    model = Toy()
    groups = build_param_groups(model)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    assert id(model.frozen.weight) not in ids


def test_switches():
    model = Toy()
    groups = build_param_groups(model, no_decay_norm_bias=False, backbone_prefix="nothing")
    decay = _names(model, next(g for g in groups if g["name"] == "head_decay"))
    no_decay = _names(model, next(g for g in groups if g["name"] == "head_no_decay"))
    assert no_decay == {"query_embed.weight", "decoder.pos_embed", "decoder.level_embed"}  # embeddings always
    assert {"norm.weight", "proj.bias", "backbone.0.weight"} <= decay
    assert all(g["lr_mult"] == 1.0 for g in groups)


def test_adamw_defaults_and_lr_mult():
    model = Toy()
    opt = build_adamw(build_param_groups(model, backbone_lr_mult=0.1))
    assert isinstance(opt, torch.optim.AdamW)
    for g in opt.param_groups:
        assert g["betas"] == (0.9, 0.999)
        assert g["lr"] == pytest.approx(8e-5 * (0.1 if g["name"].startswith("backbone") else 1.0))
    assert build_adamw(model.parameters()).param_groups[0]["weight_decay"] == 5e-4


def _trained(fused: bool | None, steps: int = 5) -> tuple[torch.optim.AdamW, dict, dict]:
    """AdamW built with `fused` after `steps` steps on a toy loss; the weights before and after."""
    torch.manual_seed(0)
    model = Toy()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = build_adamw(build_param_groups(model, backbone_lr_mult=0.1), lr=1e-2, fused=fused)
    for _ in range(steps):
        opt.zero_grad()
        x = torch.randn(2, 3, 5, 5)
        y = model.proj(model.backbone(x).mean((2, 3)))
        # the conv's own term: behind BatchNorm alone its bias's gradient is 0 up to rounding, which Adam's
        # normalised step would blow up into updates that differ between any two implementations
        loss = model.gn(model.norm(y)[..., None]).square().sum() + model.backbone[0](x).square().mean()
        loss = loss + model.decoder.pos_embed.sum()
        (loss + (model.query_embed.weight * model.decoder.level_embed[:1]).sum()).backward()
        opt.step()
    return opt, before, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_adamw_is_fused_on_cpu_and_updates_as_the_per_tensor_loop():
    fused, before, weights = _trained(None)
    assert fused.defaults["fused"] is True  # chosen: every parameter is a float tensor on the CPU
    loop, _, expected = _trained(False)
    assert not loop.defaults["fused"]
    for key, value in expected.items():
        torch.testing.assert_close(weights[key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert not torch.allclose(weights["proj.weight"], before["proj.weight"])  # it trained
    # parameters where the kernel does not run (here: on the meta device) keep torch's default
    assert not build_adamw([nn.Parameter(torch.zeros(2, device="meta"))]).defaults["fused"]


def test_lightning_style_factories_from_hydra():
    """`E2EHIMModule.configure_optimizers`'s calls on the configs proposed for conf/model/e2e_him.yaml."""
    opt_cfg = {
        "_target_": "e2e_him.models.optim.build_adamw",
        "_partial_": True,
        "lr": 8e-5,
        "betas": [0.9, 0.999],
    }
    sched_cfg = {"_target_": "e2e_him.models.optim.cosine_schedule", "_partial_": True, "warmup_steps": 0}
    opt_factory = instantiate(OmegaConf.create(opt_cfg))
    sched_factory = instantiate(OmegaConf.create({**sched_cfg, "min_lr_ratio": 0.0}))
    opt = opt_factory(params=build_param_groups(Toy(), weight_decay=5e-4, backbone_lr_mult=1.0))
    sched = sched_factory(optimizer=opt, total_steps=10)
    assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)
    assert all(g["lr"] == pytest.approx(8e-5) and g["betas"] == (0.9, 0.999) for g in opt.param_groups)


def _lrs(total: int, warmup: int = 0, min_lr_ratio: float = 0.0, steps: int | None = None) -> list[dict]:
    """Learning rate of each group (by name) at optimiser steps 0..steps (the rate each step uses)."""
    model = Toy()
    opt = build_adamw(build_param_groups(model, backbone_lr_mult=0.1), lr=1.0)
    sched = cosine_schedule(opt, total, warmup, min_lr_ratio)
    out = []
    for _ in range((steps if steps is not None else total) + 1):
        out.append({g["name"]: g["lr"] for g in opt.param_groups})
        opt.step()
        sched.step()
    return out


def test_cosine_start_middle_end():
    lrs = _lrs(100)
    head = [r["head_decay"] for r in lrs]
    assert head[0] == pytest.approx(1.0)  # step 0: the initial rate
    assert head[50] == pytest.approx(0.5)  # (1 + cos(pi / 2)) / 2
    assert head[25] == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert head[100] == pytest.approx(0.0, abs=1e-12)  # (1 + cos(pi)) / 2
    assert all(a >= b for a, b in itertools.pairwise(head))
    assert lrs[50]["backbone_decay"] == pytest.approx(0.05)  # the backbone group keeps its 0.1 factor
    # with a floor: 0.1 + 0.9 * 0.5 = 0.55 in the middle, 0.1 at the end and after
    floor = [r["head_no_decay"] for r in _lrs(100, min_lr_ratio=0.1, steps=120)]
    assert (
        floor[50] == pytest.approx(0.55)
        and floor[100] == pytest.approx(0.1)
        and floor[120] == pytest.approx(0.1)
    )


def test_warmup_then_cosine():
    head = [r["head_decay"] for r in _lrs(110, warmup=10)]
    assert head[0] == pytest.approx(0.1)  # (0 + 1) / 10
    assert head[4] == pytest.approx(0.5)  # (4 + 1) / 10
    assert head[9] == pytest.approx(1.0) and head[10] == pytest.approx(1.0)
    assert head[60] == pytest.approx(0.5)  # halfway through the 100 cosine steps
    assert head[110] == pytest.approx(0.0, abs=1e-12)
    assert cosine_factor(5, 110, 10) == pytest.approx(0.6)


def test_warmup_longer_than_run_is_shortened_with_a_warning():
    opt = build_adamw(Toy().parameters(), lr=1.0)
    with pytest.warns(UserWarning, match="warming up for 2 steps"):
        sched = cosine_schedule(opt, total_steps=20, warmup_steps=50)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)  # step 0 of a 2-step warm-up
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)


def test_schedule_argument_errors():
    opt = build_adamw(Toy().parameters())
    for kwargs, match in [
        ({"total_steps": 0}, "total_steps"),
        ({"total_steps": float("inf")}, "total_steps"),
        ({"total_steps": 10, "warmup_steps": -1}, "warmup_steps"),
        ({"total_steps": 10, "min_lr_ratio": 1.5}, "min_lr_ratio"),
    ]:
        with pytest.raises(ValueError, match=match):
            functools.partial(cosine_schedule, opt)(**kwargs)
