"""The objective waits for the device once per step: every decoder layer matched with one host copy, the same
assignments and losses as matching one layer at a time (the objective before issue 27), and a step whose
costs are not finite flagged and made NaN instead of raising on one process."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch
from test_criterion import random_case

from e2e_him.losses import HungarianMatcher, SetCriterion, downsample_masks

# SetCriterion()(random_case(aux_layers=3, seed=0)) as the per-layer objective of commit 1acd78f computed it
BEFORE = {
    "loss_cls": 0.160463348031044,
    "loss_focal": 0.18142957985401154,
    "loss_dice": 0.5961342453956604,
    "loss_tri": 0.9302404522895813,
    "loss_alpha_pu": 0.5074602365493774,
    "loss_alpha_gu": 0.42946353554725647,
    "loss_cls_aux": 0.4286262094974518,
    "loss_focal_aux": 0.5388181805610657,
    "loss_dice_aux": 1.8594942092895508,
    "loss_seg": 0.614277184009552,
    "loss_perception": 1.4165939092636108,
    "loss_seg_aux": 1.913375973701477,
    "loss_perception_aux": 4.056507110595703,
    "loss_alpha": 3.6696982383728027,
    "loss_matting": 27.650896072387695,
    "loss": 33.12399673461914,
}
BEFORE_INDICES = [([0, 3], [0, 1]), ([3], [0])]

SYNCING = {"cpu", "item", "tolist", "numpy", "__bool__", "__int__", "__float__", "nonzero"}


class OnDevice(torch.Tensor):
    """A CPU tensor standing for one on a GPU: counts the calls that read its values on the host (each a wait
    for the device there); `.cpu()` returns a plain tensor, the host copy."""

    reads: ClassVar[list[str]] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCING or (name == "to" and any(str(a) == "cpu" for a in args[1:])):
            cls.reads.append(name)
        out = super().__torch_function__(func, types, args, kwargs or {})
        if name == "cpu":
            return out.as_subclass(torch.Tensor)
        return out


def on_device(tree):
    if torch.is_tensor(tree):
        return tree.as_subclass(OnDevice)
    if isinstance(tree, dict):
        return {k: on_device(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [on_device(v) for v in tree]
    return tree


def test_same_losses_and_assignment_as_one_layer_at_a_time():
    outputs, batch = random_case(aux_layers=3, seed=0)
    losses, indices = SetCriterion().losses_and_indices(outputs, batch)
    for key, value in BEFORE.items():
        assert float(losses[key].detach()) == pytest.approx(value, rel=1e-6, abs=1e-7), key
    assert [(q.tolist(), t.tolist()) for q, t in indices] == BEFORE_INDICES
    assert float(losses["nonfinite_cost"]) == 0.0


@pytest.mark.parametrize("num_points", [None, 12])
def test_match_layers_equals_matching_each_layer(num_points):
    outputs, batch = random_case(aux_layers=3, seed=2)
    matcher = HungarianMatcher(num_points=num_points)
    layers = [outputs, *outputs["aux_outputs"]]
    gt = batch["masks"] if num_points else downsample_masks(batch["masks"], (4, 4))
    torch.manual_seed(0)
    together, finite = matcher.match_layers(layers, [gt] * len(layers), batch["valid"])
    torch.manual_seed(0)  # the same random points, drawn in the same order, one layer at a time
    alone = [matcher(layer, gt, batch["valid"]) for layer in layers]
    assert finite and len(together) == 4
    for a, b in zip(together, alone):
        assert [(q.tolist(), t.tolist()) for q, t in a] == [(q.tolist(), t.tolist()) for q, t in b]


@pytest.mark.parametrize("aux_layers", [0, 5])
def test_one_host_read_per_step_whatever_the_layer_count(aux_layers):
    outputs, batch = random_case(aux_layers=aux_layers, seed=1)
    OnDevice.reads = []
    losses = SetCriterion()(on_device(outputs), on_device(batch))
    losses["loss"].backward()
    assert OnDevice.reads == ["cpu"]  # the packed costs and valid flags of every layer
    assert torch.isfinite(losses["loss"])


def test_a_non_finite_cost_is_flagged_and_makes_every_gradient_nan():
    outputs, batch = random_case(aux_layers=2, seed=0)
    with torch.no_grad():
        outputs["aux_outputs"][1]["pred_masks"][0, 2, 1, 1] = float("nan")  # one bad logit in one layer
    losses = SetCriterion()(outputs, batch)  # no raise: the other processes would wait for this one
    assert float(losses["nonfinite_cost"]) == 1.0 and math.isnan(float(losses["loss"]))
    losses["loss"].backward()
    for key in ("pred_logits", "alpha_pred", "trimap_logits"):  # outputs the bad layer does not feed too
        grad = outputs[key].grad
        # NaN wherever the loss reads the output; nowhere a finite step to take
        assert torch.isnan(grad).any() and not (torch.isfinite(grad) & (grad != 0)).any(), key
    with pytest.raises(ValueError, match="not finite"):  # the matcher on its own still refuses
        HungarianMatcher()(outputs["aux_outputs"][1], batch["masks"], batch["valid"])


def test_losses_in_float32_with_autocast_off_inside():
    outputs, batch = random_case(aux_layers=1, seed=3)
    reference = SetCriterion()(outputs, batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as under bf16-mixed: the outputs stay as they are
        losses = SetCriterion()(outputs, batch)
    for key, value in reference.items():
        assert losses[key].dtype == torch.float32 and torch.equal(losses[key], value), key
