"""Sine positions, the DETR encoder/decoder, the stem and the perception network's heads."""

from __future__ import annotations

import math

import pytest
import torch

from e2e_him.models.perception import PerceptionNetwork
from e2e_him.models.position_encoding import PositionEmbeddingSine
from e2e_him.models.stem import DeepStem
from e2e_him.models.transformer import TransformerDecoder, TransformerEncoder


def test_sine_positions_by_hand():
    # 2 channels per axis: dim_t = 10000^(2 * floor(i / 2) / 2) = [1, 1]. One row (y = 2 pi), two columns
    # (x = pi, 2 pi): channels [sin y, cos y, sin x, cos x].
    pos = PositionEmbeddingSine(num_pos_feats=2)(torch.zeros(3, 7, 1, 2))
    assert pos.shape == (3, 4, 1, 2)
    expected = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [-1.0, 1.0]]).view(4, 1, 2)
    torch.testing.assert_close(pos[0], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(pos[2], pos[0])
    # a higher frequency: channel pair 2 of 4 uses dim_t = 10000^(2 * 1 / 4) = 100
    pos = PositionEmbeddingSine(num_pos_feats=4)(torch.zeros(1, 1, 1, 1))
    torch.testing.assert_close(pos[0, 2, 0, 0], torch.tensor(math.sin(2 * math.pi / 100)), atol=1e-5, rtol=0)


def test_stem_resolutions():
    half, quarter = DeepStem()(torch.randn(1, 3, 64, 96))
    assert half.shape == (1, 64, 32, 48) and quarter.shape == (1, 128, 16, 24)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in DeepStem().modules())


def test_encoder_is_permutation_equivariant_and_uses_positions():
    torch.manual_seed(0)
    encoder = TransformerEncoder(num_layers=2, d_model=16, nhead=2, dim_feedforward=32).eval()
    x, pos = torch.randn(1, 6, 16), torch.randn(1, 6, 16)
    perm = torch.tensor([3, 1, 5, 0, 2, 4])
    with torch.no_grad():
        out = encoder(x, pos)
        torch.testing.assert_close(encoder(x[:, perm], pos[:, perm]), out[:, perm])
        assert not torch.allclose(encoder(x, torch.zeros_like(pos)), out)
    assert len(TransformerEncoder(num_layers=0).layers) == 0


def test_decoder_returns_every_layer_after_the_final_norm():
    torch.manual_seed(0)
    decoder = TransformerDecoder(num_layers=3, d_model=16, nhead=2, dim_feedforward=32).eval()
    tgt = torch.zeros(2, 4, 16)
    with torch.no_grad():
        out = decoder(tgt, torch.randn(2, 9, 16), torch.randn(2, 4, 16), torch.randn(2, 9, 16))
    assert out.shape == (3, 2, 4, 16)
    # LayerNorm (weight 1, bias 0) output: zero mean and unit variance over the channels
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 2, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(3, 2, 4), atol=1e-3, rtol=0)


def _perception(**kwargs) -> PerceptionNetwork:
    torch.manual_seed(0)
    defaults = dict(hidden_dim=16, num_queries=3, enc_layers=1, dec_layers=3, nheads=2, dim_feedforward=32)
    return PerceptionNetwork([8, 12, 20, 24], **{**defaults, **kwargs}).eval()


def test_perception_outputs_and_deep_supervision():
    net = _perception()
    features = [torch.randn(1, c, 64 // s, 64 // s) for c, s in zip([8, 12, 20, 24], [4, 8, 16, 32])]
    with torch.no_grad():
        out = net(features)
    assert out["context"].shape == (1, 16, 4, 4) and out["detailed_context"].shape == (1, 16, 8, 8)
    assert out["codes"].shape == (1, 3, 16) and out["pred_logits"].shape == (1, 3, 2)
    assert len(out["aux_outputs"]) == 2
    # the heads are shared: the last aux entry is the second-to-last layer through the same heads
    with torch.no_grad():
        memory = out["context"].flatten(2).transpose(1, 2)
        pos = net.position(out["context"]).flatten(2).transpose(1, 2)
        query_pos = net.query_embed.weight[None]
        codes = net.decoder(torch.zeros_like(query_pos), memory, query_pos, pos)
        masks = net.predict_masks(codes[1], out["detailed_context"])
    torch.testing.assert_close(out["aux_outputs"][1]["pred_logits"], net.class_head(codes[1]))
    torch.testing.assert_close(out["aux_outputs"][1]["pred_masks"], masks)
    torch.testing.assert_close(out["codes"], codes[-1])


def test_eq2_mask_is_the_kernel_dot_product():
    net = _perception()
    codes, detailed = torch.randn(1, 3, 16), torch.randn(1, 16, 2, 3)
    with torch.no_grad():
        masks = net.predict_masks(codes, detailed)
        kernels, biases = net.mask_kernels(codes)
    # query 1 at pixel (1, 2): k_seg . F_dc[:, 1, 2] + b_seg
    expected = (kernels[0, 1, 0] * detailed[0, :, 1, 2]).sum() + biases[0, 1, 0]
    torch.testing.assert_close(masks[0, 1, 1, 2], expected)


def test_hidden_dim_must_split_over_heads():
    with pytest.raises(ValueError, match="nheads"):
        PerceptionNetwork([8, 12, 20, 24], hidden_dim=30, nheads=4)
