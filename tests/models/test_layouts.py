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
    out = cat_channels((a, b.contiguous()))  # mixed layouts: the first one's wins
    assert torch.equal(out, torch.cat((a, b), dim=1)) and out.dtype == torch.float32 and is_channels_last(out)
    out = cat_channels((a.contiguous(), b))
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
