"""The whole network: output contract for every backbone, batching, Table VII switches, gradients, 640 run."""

from __future__ import annotations

import pytest
import torch
from model_builders import BACKBONES, build_backbone, build_small_net, training_batch

from e2e_him.losses import SetCriterion
from e2e_him.models.e2e_him import E2EHIM
from e2e_him.models.fusion import UNetFusion
from e2e_him.models.layers import ConvGNAct

N, C, CG = 5, 32, 16  # the narrow model's queries, hidden width and guidance width per head


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _check_contract(out: dict, b: int, n: int, h: int, w: int, heads: int) -> None:
    assert out["pred_logits"].shape == (b, n, 2)
    assert out["pred_masks"].shape == (b, n, h // 8, w // 8)
    assert out["trimap_logits"].shape == (b, n, 3, h // 2, w // 2)
    assert out["alpha_pred"].shape == out["alpha_fin"].shape == (b, n, h, w)
    assert out["context"].shape == (b, C, h // 16, w // 16)
    assert out["detailed_context"].shape == (b, C, h // 8, w // 8)
    for key in ("alpha_pred", "alpha_fin"):
        assert 0 <= out[key].min() and out[key].max() <= 1
    if heads:
        assert out["guidance"].shape == (b, heads * CG, h // 8, w // 8)
        assert out["guidance_attention"].shape == (b, heads, n + 1, h // 8, w // 8)
        torch.testing.assert_close(out["guidance_attention"].sum(2), torch.ones(b, heads, h // 8, w // 8))
    else:
        assert out["guidance"] is None and out["guidance_attention"] is None


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize(("h", "w"), [(320, 320), (256, 384)])
def test_output_contract_for_every_backbone(backbone, h, w):
    net = build_small_net(backbone).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, h, w))
    _check_contract(out, 1, N, h, w, heads=2)
    # one aux dict per intermediate decoder layer (dec_layers = 2)
    assert len(out["aux_outputs"]) == 1
    assert out["aux_outputs"][0]["pred_logits"].shape == (1, N, 2)
    assert out["aux_outputs"][0]["pred_masks"].shape == (1, N, h // 8, w // 8)


def test_sizes_not_multiple_of_32_are_an_error():
    net = build_small_net()
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.randn(1, 3, 64, 80))


def test_batch_of_two_equals_two_single_runs():
    net = build_small_net("resnet18").eval()
    torch.manual_seed(3)
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        batched = net(images)
        singles = [net(images[i : i + 1]) for i in range(2)]
    for key in ("pred_logits", "pred_masks", "trimap_logits", "alpha_pred", "context", "guidance"):
        for i in range(2):
            torch.testing.assert_close(batched[key][i : i + 1], singles[i][key], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        batched["aux_outputs"][0]["pred_masks"][1:],
        singles[1]["aux_outputs"][0]["pred_masks"],
        atol=1e-4,
        rtol=1e-4,
    )


def test_no_guidance_heads_means_no_guidance_parameters():  # Table VII, Var1
    net = build_small_net(guidance={"num_heads": 0}, matting={"use_fusion": False}).eval()
    assert net.guidance is None
    assert not [n for n, _ in net.named_parameters() if n.startswith("guidance")]
    assert isinstance(net.matting.fusion, ConvGNAct)
    assert net.matting.fusion[0].in_channels == C  # only the image features F_dc
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 64))
    _check_contract(out, 1, N, 64, 64, heads=0)


def test_four_guidance_heads():  # Table VII, Var2
    net = build_small_net(guidance={"num_heads": 4}).eval()
    assert net.matting.fusion.down[0][0][0].in_channels == C + 4 * CG
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 64))
    _check_contract(out, 1, N, 64, 64, heads=4)


def test_fusion_off_removes_the_unet():  # Table VII, Var5
    on, off = build_small_net(), build_small_net(matting={"use_fusion": False})
    assert any(isinstance(m, UNetFusion) for m in on.modules())
    assert not any(isinstance(m, UNetFusion) for m in off.modules())
    # the projection C + 2 C_g -> fusion_widths[0] = 64 -> 32 (1x1, no bias) plus its GN (2 x 32)
    assert _num_params(off.matting.fusion) == 64 * 32 + 2 * 32
    with torch.no_grad():
        _check_contract(off.eval()(torch.randn(1, 3, 64, 64)), 1, N, 64, 64, heads=2)


def test_refiner_off_drops_the_low_level_inputs():  # Table VII, Var6
    on, off = build_small_net(), build_small_net(matting={"use_refiner": False})
    first_in = [stage[0][0].in_channels for stage in off.matting.refiner.stages]
    # without low-level features each stage sees only the previous width (fusion 32, then 16, 16)
    assert first_in == [32, 16, 16]
    # with them: + the stem's H/4 (32) and H/2 (16) widths and the image's 3 channels
    assert [stage[0][0].in_channels for stage in on.matting.refiner.stages] == [64, 32, 19]
    assert _num_params(on) - _num_params(off) == 9 * (32 * 16 + 16 * 16 + 3 * 8)
    with torch.no_grad():
        _check_contract(off.eval()(torch.randn(1, 3, 64, 64)), 1, N, 64, 64, heads=2)


@pytest.mark.parametrize("queries", [10, 20, 50])  # Table VII, Var3 / default / Var4
def test_number_of_queries(queries):
    net = build_small_net(perception={"num_queries": queries}).eval()
    assert net.num_queries == queries
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 64))
    _check_contract(out, 1, queries, 64, 64, heads=2)


@pytest.mark.parametrize("backbone", ["resnet18", "swin_tiny"])
def test_the_loss_reaches_every_parameter(backbone):
    """What DDP needs (it stops on parameters the loss does not reach): backward of the objective, not of the
    outputs' sum, which would reach parameters that no loss term reads."""
    net = build_small_net(backbone).train()
    batch = training_batch()
    SetCriterion()(net(batch["image"]), batch)["loss"].backward()
    no_grad = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []


def test_alpha_fin_only_outside_training():
    net = build_small_net("resnet18")
    x = torch.randn(1, 3, 64, 64)
    assert "alpha_fin" not in net.train()(x)  # no loss reads Eq. 8's matte
    with torch.no_grad():
        assert net.eval()(x)["alpha_fin"].shape == (1, N, 64, 64)


def test_kaiming_init_of_the_non_backbone_weights():
    net = build_small_net()
    norms = [
        m
        for n, m in net.named_modules()
        if isinstance(m, torch.nn.GroupNorm) and not n.startswith("backbone")
    ]
    assert norms and all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in norms)
    biases = [
        m.bias
        for n, m in net.named_modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
        and m.bias is not None
        and not n.startswith("backbone")
    ]
    assert biases and all(torch.all(b == 0) for b in biases)
    # fan-out Kaiming normal: std = sqrt(2 / (out * k * k)); U-Net's 64 -> 64 3x3 conv: sqrt(2 / 576) = 0.0589
    conv = net.matting.fusion.down[1][1][0]
    assert conv.weight.shape == (64, 64, 3, 3)
    assert abs(conv.weight.std().item() - (2 / 576) ** 0.5) < 0.003
    # the backbone keeps timm's own init: ResNet's last norm of each block starts at zero
    assert torch.all(net.backbone.body.layer1[0].bn2.weight == 0)


@pytest.mark.slow
def test_default_resnet50_model_on_one_640_image():
    torch.manual_seed(0)
    net = E2EHIM.from_config(build_backbone("resnet50")).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 640, 640))
    assert out["pred_logits"].shape == (1, 20, 2)
    assert out["alpha_fin"].shape == (1, 20, 640, 640)
    assert out["trimap_logits"].shape == (1, 20, 3, 320, 320)
    assert out["guidance"].shape == (1, 256, 80, 80)
    assert out["guidance_attention"].shape == (1, 2, 21, 80, 80)
    assert len(out["aux_outputs"]) == 5
    assert torch.isfinite(out["alpha_pred"]).all()


def test_backbone_input_width_must_match_the_stem():
    with pytest.raises(ValueError, match="in_channels=128"):
        E2EHIM.from_config(build_backbone("resnet18"), stem={"widths": (8, 8, 16, 32)})
