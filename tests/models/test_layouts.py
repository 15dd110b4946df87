"""Dtypes and memory formats on the inference path: channel concatenations in one dtype and layout, backbone
maps in the input's layout, the dynamic convolution on channels-last maps. Each gives the values of the
plain code, only faster (docs/benchmarks.md)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from e2e_him.models.dynamic import dynamic_conv1x1
from e2e_him.models.layers import cat_channels, is_channels_last, nchw_from_tokens

CL = torch.channels_last


def maps(dtypes=(torch.bfloat16, torch.float32), channels=(5, 3)):
    torch.manual_seed(0)
    return [torch.randn(2, c, 6, 7).to(d).contiguous(memory_format=CL) for c, d in zip(channels, dtypes)]


def test_cat_channels_without_autocast_is_torch_cat():
    a, b = maps(dtypes=(torch.float32, torch.float32))
    for first, second in ((a, b.contiguous()), (a.contiguous(), b)):  # mixed layouts: channels-last wins
        out = cat_channels((first, second))
        assert torch.equal(out, torch.cat((a, b), dim=1)) and out.dtype == torch.float32
        assert is_channels_last(out)
    out = cat_channels((a.contiguous(), b.contiguous()))
    assert torch.equal(out, torch.cat((a, b), dim=1)) and not is_channels_last(out)


def test_cat_channels_under_autocast_feeds_a_convolution_the_same_values():
    a, b = maps()  # a bfloat16 map (a convolution's output under autocast) and the float32 image
    weight = torch.randn(4, 8, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cat_channels((a, b))
        assert out.dtype == torch.bfloat16 and is_channels_last(out)
        ours = F.conv2d(out, weight, padding=1)
        plain = F.conv2d(torch.cat((a, b), dim=1), weight, padding=1)  # float32 cat, cast by the conv
    assert plain.dtype == torch.bfloat16 and torch.equal(ours, plain)


@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
def test_tokens_become_maps_in_the_layout_of_the_input(layout):
    tokens = torch.randn(2, 4, 5, 6)  # (B, H, W, C)
    like = torch.randn(2, 3, 8, 10).contiguous(memory_format=layout)
    out = nchw_from_tokens(tokens, like)
    assert torch.equal(out, tokens.permute(0, 3, 1, 2)) and is_channels_last(out) == (layout == CL)
    if layout == CL:  # the permuted view itself, no copy
        assert out.data_ptr() == tokens.data_ptr()


def test_a_one_channel_map_counts_as_plain_nchw():
    assert not is_channels_last(torch.randn(1, 1, 4, 4).contiguous(memory_format=CL))
    assert not is_channels_last(torch.randn(3, 4))


@pytest.mark.parametrize("queries", [1, 3])
def test_dynamic_conv_on_a_channels_last_map(queries):
    torch.manual_seed(0)
    features = torch.randn(2, 6, 5, 7)
    kernels, biases = torch.randn(2, queries, 2, 7)[..., :6], torch.randn(2, queries, 2)  # strided kernels
    plain = dynamic_conv1x1(features, kernels, biases)
    ours = dynamic_conv1x1(features.contiguous(memory_format=CL), kernels, biases)
    assert ours.shape == (2, queries, 2, 5, 7) and ours.is_contiguous()
    torch.testing.assert_close(ours, plain, atol=1e-5, rtol=1e-5)
    expected = torch.einsum("bnkc,bchw->bnkhw", kernels, features) + biases[..., None, None]
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = dynamic_conv1x1(features.to(torch.bfloat16).contiguous(memory_format=CL), kernels, biases)
    torch.testing.assert_close(low.float(), plain, atol=0.1, rtol=0.02)


def plain_cat(maps):
    return torch.cat(tuple(maps), dim=1)


def plain_dynamic_conv(features, kernels, biases):
    """dynamic_conv1x1 as it was: one einsum over the map in whatever layout it has."""
    b, *q, c = kernels.shape
    out = torch.einsum("bmc,bchw->bmhw", kernels.reshape(b, -1, c), features)
    return out.view(b, *q, *features.shape[-2:]) + biases[..., None, None]


def outputs_before_and_now(net, monkeypatch, size=(96, 128)):
    """The network's bf16 channels-last outputs with the plain cat, einsum and NCHW backbone maps, then with
    this module's layout-keeping versions."""
    import e2e_him.models.backbones.timm_backbone as timm_backbone
    import e2e_him.models.fusion as fusion
    import e2e_him.models.matting_head as matting_head
    import e2e_him.models.refiner as refiner
    import e2e_him.models.release.feature_decoder as release_decoder
    import e2e_him.models.release.matting as release_matting
    import e2e_him.models.release.network as release_network
    import e2e_him.models.release.perception as release_perception

    torch.manual_seed(1)
    net = net.eval().to(memory_format=CL)
    image = torch.randn(1, 3, *size).contiguous(memory_format=CL)
    runs = []
    for patched in (True, False):
        with monkeypatch.context() as patch:
            if patched:
                for module in (
                    fusion,
                    matting_head,
                    refiner,
                    release_decoder,
                    release_matting,
                    release_network,
                ):
                    patch.setattr(module, "cat_channels", plain_cat)
                for module in (matting_head, release_matting, release_perception):
                    patch.setattr(module, "dynamic_conv1x1", plain_dynamic_conv)
                patch.setattr(
                    timm_backbone, "nchw_from_tokens", lambda t, like: t.permute(0, 3, 1, 2).contiguous()
                )
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                out = net(image, keep_scores_above=0.0)
        runs.append({k: out[k] for k in ("pred_logits", "trimap_logits", "alpha_pred", "alpha_fin")})
    return runs


def test_the_paper_layout_gives_the_same_bf16_outputs_as_before(monkeypatch):
    from model_builders import build_small_net

    before, now = outputs_before_and_now(build_small_net("swin_tiny"), monkeypatch)
    for key in before:
        assert torch.equal(now[key], before[key]), key


@pytest.mark.slow
def test_the_released_layout_gives_the_same_bf16_outputs_as_before(monkeypatch):
    from e2e_him.models.release.convert import build_release_module, release_run_config

    torch.manual_seed(0)
    before, now = outputs_before_and_now(build_release_module(release_run_config()).net, monkeypatch)
    for key in before:
        assert torch.equal(now[key], before[key]), key


@pytest.mark.parametrize("name", ["swin_tiny", "resnet18", "vitaev2_s"])
def test_backbone_maps_follow_the_layout_of_their_input(name):
    from model_builders import build_backbone

    backbone = build_backbone(name).eval()
    x = torch.randn(1, 128, 64, 96)
    with torch.no_grad():
        plain, last = backbone(x), backbone(x.contiguous(memory_format=CL))
    assert all(f.is_contiguous() for f in plain) and all(is_channels_last(f) for f in last)
    for a, b in zip(plain, last):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layout", ["paper", "released"])
def test_the_alpha_leaves_the_network_in_float32_under_autocast(layout):
    """Eq. 7's sigmoid (the released layout: its clamp) in float32 under bf16 autocast: in bfloat16 every
    value from 0.998 up would round to 1, where the sigmoid's gradient vanishes."""
    from model_builders import build_small_net, build_small_release_net

    net = (build_small_net("resnet18") if layout == "paper" else build_small_release_net()).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.randn(1, 3, 64, 64))
    alpha = out["alpha_pred"]
    assert alpha.dtype == torch.float32 and out["trimap_logits"].dtype == torch.bfloat16  # the rest stays
    if layout == "paper":  # a sigmoid computed in float32, not bfloat16 values cast up after the fact
        assert not torch.equal(alpha, alpha.bfloat16().float())
    alpha.sum().backward()  # and the gradient reaches the network through it
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.stem.parameters())
