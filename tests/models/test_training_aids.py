"""The training aids of ours (off in the paper's experiments) change what they say and nothing else."""

from __future__ import annotations

import pytest
import torch
from model_builders import build_small_net

from e2e_him.losses import SetCriterion
from e2e_him.metrics.part_iou import PartIoU, matched_part_ious


def _batch(b: int = 2, k: int = 2, size: int = 64) -> dict:
    torch.manual_seed(3)
    masks = torch.zeros(b, k, size, size)
    masks[:, 0, 8:40, 8:24] = 1
    masks[:, 1, 20:60, 36:56] = 1
    trimaps = (masks * 2).long()
    return {
        "image": torch.randn(b, 3, size, size),
        "masks": masks,
        "alphas": masks.clone(),
        "trimaps": trimaps,
        "labels": torch.ones(b, k, dtype=torch.long),
        "valid": torch.ones(b, k, dtype=torch.bool),
    }


@torch.no_grad()
def test_default_network_is_unchanged_by_the_switch_defaults():
    a = build_small_net("resnet18", seed=0).eval()
    b = build_small_net(
        "resnet18", seed=0, perception={"mask_position_channels": 0, "masked_attention": False}
    ).eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(a(x)["alpha_fin"], b(x)["alpha_fin"])


@torch.no_grad()
def test_masked_attention_restricts_each_query_to_its_previous_mask():
    net = build_small_net("resnet18", seed=0, perception={"masked_attention": True, "dec_layers": 3}).eval()
    captured = []
    layer = net.perception.decoder.layers[1].cross_attn
    hook = layer.register_forward_pre_hook(lambda m, args, kwargs: captured.append(kwargs["attn_mask"]),
                                           with_kwargs=True)  # fmt: skip
    out = net(torch.randn(1, 3, 64, 64))
    hook.remove()
    mask = captured[0]  # (heads, N, L): from layer 0's masks at the memory's size (H/16: 4 x 4 = 16 tokens)
    assert mask.dtype == torch.bool and mask.shape == (net.perception.nheads, net.num_queries, 16)
    first = torch.nn.functional.interpolate(out["aux_outputs"][0]["pred_masks"], size=(4, 4), mode="bilinear")
    expected = (first < 0).flatten(2)[0]
    expected &= ~expected.all(-1, keepdim=True)  # an empty mask attends everywhere
    assert torch.equal(mask[0], expected)


def test_position_channels_let_the_mask_kernels_read_where_a_pixel_is():
    net = build_small_net("resnet18", seed=0, perception={"mask_position_channels": 8})
    assert net.perception.mask_kernels.feature_channels == net.perception.mask_position_channels + 32
    out = net(torch.randn(1, 3, 64, 64))
    assert out["pred_masks"].shape == (1, net.num_queries, 8, 8)


def test_person_head_loss_is_zero_weight_by_default_and_learns_when_on():
    net = build_small_net("resnet18", seed=0, perception={"person_head": True})
    batch = _batch()
    outputs = net(batch["image"])
    assert outputs["pred_person"].shape == (2, 8, 8)
    off = SetCriterion()(outputs, batch)
    on = SetCriterion(person_weight=2.0)(outputs, batch)
    assert "loss_person" not in off and on["loss_person"] > 0
    assert torch.allclose(on["loss"], off["loss"] + 2.0 * on["loss_person"])


def test_aux_weight_scales_the_deep_supervision_terms():
    net = build_small_net("resnet18", seed=0, perception={"dec_layers": 3})
    batch = _batch()
    outputs = net(batch["image"])
    one, half = SetCriterion(aux_weight=1.0)(outputs, batch), SetCriterion(aux_weight=0.5)(outputs, batch)
    assert one["loss_perception_aux"] > 0
    assert torch.allclose(one["loss"] - half["loss"], 0.5 * one["loss_perception_aux"], atol=1e-4)


def test_mask_prior_adds_one_kernel_weight_per_map():
    net = build_small_net("resnet18", seed=0, matting={"mask_prior": True})
    m = net.matting
    assert m.trimap_kernels.feature_channels == 8 + 1 and m.alpha_kernels.feature_channels == 8 + 1
    with torch.no_grad():
        out = net.eval()(torch.randn(1, 3, 64, 64))
    assert out["alpha_fin"].shape == (1, net.num_queries, 64, 64)


def test_trimap_stride_8_predicts_the_trimap_on_the_perception_grid_and_trains():
    net = build_small_net("resnet18", seed=0, matting={"trimap_stride": 8})
    assert net.matting.refiner.trimap_proj is None  # no H/2 trimap projection left unused
    batch = _batch()
    outputs = net(batch["image"])
    assert outputs["trimap_logits"].shape[-2:] == (8, 8) == outputs["pred_masks"].shape[-2:]
    assert "alpha_fin" not in outputs  # training does not compute Eq. 8's matte; evaluation does
    with torch.no_grad():
        assert net.eval()(batch["image"])["alpha_fin"].shape[-2:] == (64, 64)
    losses = SetCriterion()(outputs, batch)
    assert torch.isfinite(losses["loss"]) and losses["loss_tri"] > 0
    losses["loss"].backward()
    assert net.matting.trimap_head[-1].weight.grad.abs().sum() > 0


def test_trimap_stride_2_is_the_paper_refiner_trimap():
    net = build_small_net("resnet18", seed=0)
    assert net.matting.trimap_head is None
    assert net(torch.randn(1, 3, 64, 64))["trimap_logits"].shape[-2:] == (32, 32)
    with pytest.raises(ValueError, match="trimap_stride"):
        build_small_net("resnet18", seed=0, matting={"trimap_stride": 4})


def test_part_iou_is_one_for_perfect_outputs_and_lower_for_shifted_ones():
    batch = _batch(b=1)
    logits = torch.where(batch["masks"] > 0.5, 10.0, -10.0)  # (1, 2, 64, 64)
    trimap = torch.stack([-logits, torch.zeros_like(logits), logits], dim=2)  # bg / fg where the mask is
    outputs = {"pred_masks": logits, "trimap_logits": trimap, "alpha_fin": batch["alphas"]}
    indices = [(torch.tensor([0, 1]), torch.tensor([0, 1]))]
    ious = matched_part_ious(outputs, batch, indices)
    assert all(torch.allclose(v, torch.ones(2)) for v in ious.values())
    shifted = {**outputs, "alpha_fin": batch["alphas"].roll(8, dims=-1)}
    assert (matched_part_ious(shifted, batch, indices)["iou_matte"] < 0.8).all()
    metric = PartIoU()
    metric.update(outputs, batch, indices)
    assert metric.compute()["iou_mask"] == pytest.approx(1.0)
