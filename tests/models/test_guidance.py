"""United guidance network: Eq. 3-5 against a literal re-computation, and stacked heads = separate heads."""

from __future__ import annotations

import pytest
import torch

from e2e_him.models.guidance import UnitedGuidanceNetwork
from e2e_him.models.init import kaiming_init

C, CSP, CG, N = 32, 64, 64, 4  # 64-channel maps: GroupNorm groups of 2 channels, which must not span heads


def _net(heads: int, seed: int = 0) -> UnitedGuidanceNetwork:
    torch.manual_seed(seed)
    net = UnitedGuidanceNetwork(heads, hidden_dim=C, guidance_dim=CG, spatial_dim=CSP, kernel_hidden_dim=24)
    kaiming_init(net)
    for p in net.parameters():  # non-trivial norms and biases too
        p.data.add_(0.1 * torch.randn_like(p))
    return net.eval()


def test_eq4_equals_the_literal_concat_and_sum():
    net = _net(2)
    torch.manual_seed(1)
    detailed, codes = torch.randn(2, C, 5, 7), torch.randn(2, N, C)
    with torch.no_grad():
        guidance, attention = net(detailed, codes)
        # Literal Algorithm 1, head by head: F_urep = Upsample(F_rep); Concat(F_bf, F_urep) has N + 1 maps.
        semantics = net.semantics(codes)  # (B, S, N, C_g)
        background = net.background_features(detailed).view(2, 2, CG, 5, 7)
        heads = []
        for s in range(2):
            upsampled = semantics[:, s, :, :, None, None].expand(-1, -1, -1, 5, 7)  # (B, N, C_g, h, w)
            stacked = torch.cat((background[:, s, None], upsampled), dim=1)  # (B, N + 1, C_g, h, w)
            heads.append((attention[:, s, :, None] * stacked).sum(dim=1))
        expected = torch.cat(heads, dim=1)  # Eq. 5
    torch.testing.assert_close(guidance, expected)
    # softmax over the N + 1 maps (Eq. 4's Softmax(W_sa, 1))
    torch.testing.assert_close(attention.sum(2), torch.ones(2, 2, 5, 7))
    logits = net.spatial_attention(detailed, codes)
    torch.testing.assert_close(attention, logits.softmax(2))


def test_eq3_background_map_first_and_dynamic_affinity():
    net = _net(1)
    detailed, codes = torch.randn(1, C, 3, 4), torch.randn(1, N, C)
    with torch.no_grad():
        logits = net.spatial_attention(detailed, codes)  # (1, 1, N + 1, 3, 4)
        torch.testing.assert_close(logits[:, 0, 0], net.background_weight(detailed)[:, 0])
        spatial = net.spatial(detailed)  # F_sp (1, C_sp, 3, 4)
        kernels, biases = net.affinity_kernels(codes)  # (1, 1, N, 1, C_sp), (1, 1, N, 1)
        # query 2's map by an ordinary 1x1 convolution with its kernel and bias
        expected = torch.nn.functional.conv2d(spatial, kernels[0, 0, 2].view(1, CSP, 1, 1), biases[0, 0, 2])
    torch.testing.assert_close(logits[:, 0, 3], expected[:, 0])


@pytest.mark.parametrize("heads", [2, 3])
def test_stacked_heads_equal_separate_heads(heads):
    """Head s of the S-head network equals a 1-head network holding head s's slice of every weight."""
    net = _net(heads)
    detailed, codes = torch.randn(2, C, 4, 6), torch.randn(2, N, C)
    with torch.no_grad():
        guidance, attention = net(detailed, codes)
    for s in range(heads):
        single = _net(1, seed=99)
        conv, gn, proj = net.spatial[0][0], net.spatial[0][1], net.spatial[1]
        sl, sg = slice(s * CSP, (s + 1) * CSP), slice(s * CG, (s + 1) * CG)
        with torch.no_grad():
            single.spatial[0][0].weight.copy_(conv.weight[sl])
            single.spatial[0][1].weight.copy_(gn.weight[sl])
            single.spatial[0][1].bias.copy_(gn.bias[sl])
            single.spatial[1].weight.copy_(proj.weight[sl])
            single.spatial[1].bias.copy_(proj.bias[sl])
            single.background_weight.weight.copy_(net.background_weight.weight[s : s + 1])
            single.background_weight.bias.copy_(net.background_weight.bias[s : s + 1])
            single.background_features[0].weight.copy_(net.background_features[0].weight[sg])
            single.background_features[1].weight.copy_(net.background_features[1].weight[sg])
            single.background_features[1].bias.copy_(net.background_features[1].bias[sg])
            for mlp in ("affinity_kernels", "semantics"):
                ours = net.get_submodule(mlp).parameters()
                for p_single, p_stack in zip(single.get_submodule(mlp).parameters(), ours):
                    p_single.copy_(p_stack.view(heads, -1)[s].view(p_single.shape))
            g1, a1 = single(detailed, codes)
        torch.testing.assert_close(guidance[:, sg], g1)
        torch.testing.assert_close(attention[:, s : s + 1], a1)


def test_zero_heads_is_not_a_guidance_network():
    with pytest.raises(ValueError, match="num_heads"):
        UnitedGuidanceNetwork(0)
