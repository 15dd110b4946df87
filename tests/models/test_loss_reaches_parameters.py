"""Every network variant's training loss reaches every trainable parameter, so that DDP never meets an unused
parameter by surprise; a combination that would leave some without gradient is refused before training."""

from __future__ import annotations

import pytest
import torch
from model_builders import build_small_net, build_small_release_net, training_batch

from e2e_him.losses import SetCriterion
from e2e_him.models.module import E2EHIMModule, check_trainable

PAPER_VARIANTS = {  # (network switches by node, objective switches)
    "paper": ({}, {}),
    "var1: no guidance, no fusion": ({"guidance": {"num_heads": 0}, "matting": {"use_fusion": False}}, {}),
    "var6: no refiner inputs": ({"matting": {"use_refiner": False}}, {}),
    "deep supervision off": ({"perception": {"dec_layers": 3}}, {"deep_supervision": False}),
    "person head": ({"perception": {"person_head": True}}, {"person_weight": 1.0}),
    "masked attention": ({"perception": {"masked_attention": True, "dec_layers": 3}}, {}),
    "mask positions": ({"perception": {"mask_position_channels": 8}}, {}),
    "mask prior": ({"matting": {"mask_prior": True}}, {}),
    "sampled points": ({}, {"num_points": 64}),
}


def unreached(net: torch.nn.Module, criterion: SetCriterion) -> list[str]:
    """Trainable parameters that the criterion's total leaves without gradient on one training batch."""
    batch = training_batch()
    net.train().zero_grad(set_to_none=True)
    criterion(net(batch["image"]), batch)["loss"].backward()
    return [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.parametrize("variant", PAPER_VARIANTS)
def test_every_paper_layout_variant(variant):
    net_switches, loss_switches = PAPER_VARIANTS[variant]
    net, criterion = build_small_net("resnet18", **net_switches), SetCriterion(**loss_switches)
    check_trainable(net, criterion)  # the configs that training accepts
    assert unreached(net, criterion) == []


@pytest.mark.parametrize("straight_through_clamp", [False, True])
def test_every_released_layout_variant(straight_through_clamp):
    net = build_small_release_net(straight_through_clamp=straight_through_clamp)
    assert unreached(net, SetCriterion()) == []


def test_a_person_head_without_its_loss_is_refused_before_training():
    net, criterion = build_small_net("resnet18", perception={"person_head": True}), SetCriterion()
    assert [n for n in unreached(net, criterion) if "person_head" not in n] == []
    assert unreached(net, criterion)  # what DDP would stop on, at its first step
    module = E2EHIMModule(net, criterion, optimizer=torch.optim.AdamW)
    with pytest.raises(ValueError, match=r"person_head=true.*person_weight is 0.*person_weight > 0"):
        module.setup("fit")
    module.setup("test")  # evaluating or predicting with such a checkpoint needs no gradient
