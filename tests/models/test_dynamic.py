"""Dynamic 1x1 convolutions (Eq. 2, 6, 7), kernel MLPs and stacked MLPs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from e2e_him.models.dynamic import KernelMLP, dynamic_conv1x1, per_image_conv1x1
from e2e_him.models.layers import MLP, StackedMLP


def test_dynamic_conv_by_hand():
    # one image, one query, 2 output maps, 2 channels, a 1x2 map
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    kernels = torch.tensor([[[[1.0, 1.0], [2.0, -1.0]]]])  # (1, 1, 2, 2)
    biases = torch.tensor([[[0.5, -0.5]]])  # (1, 1, 2)
    out = dynamic_conv1x1(features, kernels, biases)
    # map 0: 1*[1, 2] + 1*[3, 4] + 0.5 = [4.5, 6.5]; map 1: 2*[1, 2] - [3, 4] - 0.5 = [-1.5, -0.5]
    torch.testing.assert_close(out, torch.tensor([[[[[4.5, 6.5]], [[-1.5, -0.5]]]]]))


def test_dynamic_conv_equals_grouped_convolution():
    torch.manual_seed(0)
    b, n, k, c = 2, 3, 3, 5
    features, kernels, biases = torch.randn(b, c, 4, 6), torch.randn(b, n, k, c), torch.randn(b, n, k)
    out = dynamic_conv1x1(features, kernels, biases)
    for i in range(b):  # the reference convolves each image with its own N x K kernels
        weight = kernels[i].reshape(n * k, c, 1, 1)
        expected = F.conv2d(features[i : i + 1], weight, biases[i].reshape(-1)).view(1, n, k, 4, 6)
        torch.testing.assert_close(out[i : i + 1], expected)


def test_kernel_mlp_splits_kernels_and_biases():
    torch.manual_seed(0)
    mlp = KernelMLP(in_dim=8, feature_channels=6, out_channels=3, hidden_dim=16, num_layers=3)
    codes = torch.randn(2, 4, 8)
    kernels, biases = mlp(codes)
    assert kernels.shape == (2, 4, 3, 6) and biases.shape == (2, 4, 3)
    flat = mlp.mlp(codes).view(2, 4, 3, 7)  # each output map: 6 kernel weights, then its bias
    torch.testing.assert_close(kernels, flat[..., :6])
    torch.testing.assert_close(biases, flat[..., 6])
    assert len(mlp.mlp.layers) == 3 and mlp.mlp.layers[1].in_features == 16


def test_stacked_mlp_equals_separate_mlps():
    torch.manual_seed(0)
    stacked = StackedMLP(num_stacks=3, in_dim=5, hidden_dim=7, out_dim=4, num_layers=3)
    x = torch.randn(2, 6, 5)
    out = stacked(x)
    assert out.shape == (2, 3, 6, 4)
    for s in range(3):
        single = MLP(5, 7, 4, 3)
        with torch.no_grad():
            for linear, layer in zip(single.layers, stacked.layers):
                linear.weight.copy_(layer.weight[s].T)
                linear.bias.copy_(layer.bias.view(3, -1)[s])
        torch.testing.assert_close(out[:, s], single(x))


@pytest.mark.parametrize("queries", [(5,), (2, 5), (3, 1)])
def test_the_two_batched_dynamic_convolutions_agree(queries):
    """One einsum (dynamic_conv1x1) and one conv2d per image (per_image_conv1x1, the release's rounding), any
    query axes."""
    gen = torch.Generator().manual_seed(len(queries))
    features = torch.randn(2, 8, 6, 7, generator=gen)
    kernels, biases = torch.randn(2, *queries, 8, generator=gen), torch.randn(2, *queries, generator=gen)
    by_image = [torch.einsum("...c,chw->...hw", kernels[i], features[i]) for i in range(2)]
    ref = torch.stack(by_image) + biases[..., None, None]
    for conv in (dynamic_conv1x1, per_image_conv1x1):
        out = conv(features, kernels, biases)
        assert out.shape == (2, *queries, 6, 7)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
