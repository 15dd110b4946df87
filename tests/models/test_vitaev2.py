"""ViTAEv2: parameter count, cells, backbone contract at odd sizes, gradients, batching, weight loading."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from e2e_him.models.backbones.vitaev2 import ViTAEv2, ViTAEv2Backbone, load_pretrained, vitaev2_s
from e2e_him.models.backbones.vitaev2_cells import CellAttention, PyramidReduction, pcm_strides

REPO_ROOT = Path(__file__).resolve().parents[2]


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _small_backbone(**kwargs) -> ViTAEv2Backbone:
    torch.manual_seed(0)
    return ViTAEv2Backbone(in_channels=128, drop_path_rate=0.0, **kwargs)


def test_classifier_parameter_count_matches_paper():
    # Paper figure: ViTAEv2-S has 19.2 M parameters (ImageNet-1k classifier, 1000-class head), Zhang et al.,
    # arXiv 2202.10108. Our implementation has 19,357,992 (+0.8 %); accept 5 %.
    n = _num_params(vitaev2_s())
    assert n == 19_357_992
    assert abs(n - 19.2e6) / 19.2e6 < 0.05


def test_classifier_forward_shape():
    model = vitaev2_s(num_classes=7).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 96))  # stages at 16x24, 8x12, 4x6, 2x3
    assert logits.shape == (1, 7)


def test_unknown_variant_is_named():
    with pytest.raises(ValueError, match="'xl'"):
        ViTAEv2(variant="xl")


def test_pyramid_reduction_by_hand():
    prm = PyramidReduction(in_chans=3, embed_dim=64, kernel_size=7, stride=4, dilations=(1, 2, 3, 4))
    # 4 branches x (3 * 64 * 7 * 7 weights + 64 biases) = 4 x 9472 = 37888
    assert _num_params(prm) == 37_888
    out = prm(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 4 * 64, 56, 56)  # every dilation lands on ceil(224 / 4) = 56
    assert pcm_strides(4) == (2, 2, 1) and pcm_strides(2) == (2, 1, 1) and pcm_strides(1) == (1, 1, 1)


def test_window_padding_is_masked_out():
    """A 5x6 map inside one 7x7 window (padded, masked) must equal full attention with the same weights."""
    torch.manual_seed(0)
    windowed = CellAttention(16, 16, num_heads=2, window_size=7).eval()
    full = CellAttention(16, 16, num_heads=2, window_size=None).eval()
    full.load_state_dict(windowed.state_dict())
    x = torch.randn(2, 5, 6, 16)
    torch.testing.assert_close(windowed(x), full(x), rtol=1e-5, atol=1e-5)


def test_window_attention_is_local():
    """Changing a token in window (0, 0) leaves every other 4x4 window unchanged."""
    torch.manual_seed(0)
    attn = CellAttention(8, 8, num_heads=1, window_size=4, relative_pos=True).eval()
    x = torch.randn(1, 8, 10, 8)  # padded to 8x12: 2x3 windows
    y = x.clone()
    y[0, 1, 2] += 1.0
    diff = (attn(x) - attn(y)).abs().sum(-1)[0]  # (8, 10)
    assert diff[:4, :4].max() > 0
    diff[:4, :4] = 0
    assert diff.max() == 0


@pytest.mark.parametrize(("height", "width"), [(320, 320), (256, 384)])
def test_backbone_feature_shapes(height: int, width: int):
    backbone = _small_backbone().eval()
    assert backbone.channels == [64, 128, 256, 512]
    assert backbone.strides == [4, 8, 16, 32]
    stem = torch.randn(1, 128, height // 4, width // 4)  # the deep stem's H/4 features
    with torch.no_grad():
        features = backbone(stem)
    assert len(features) == 4
    for feat, channels, stride in zip(features, backbone.channels, backbone.strides):
        assert feat.shape == (1, channels, height // stride, width // stride)
        assert torch.isfinite(feat).all()


def test_gradients_reach_all_parameters():
    backbone = _small_backbone(relative_pos=True).train()
    features = backbone(torch.randn(1, 128, 24, 40))  # 24x40 pads to 28x42 windows
    torch.manual_seed(1)
    loss = sum((f * torch.randn_like(f)).sum() for f in features)
    loss.backward()
    missing = [n for n, p in backbone.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_batch_of_two_equals_two_singles():
    backbone = _small_backbone().eval()
    x = torch.randn(2, 128, 24, 40)
    with torch.no_grad():
        both = backbone(x)
        singles = [backbone(x[i : i + 1]) for i in range(2)]
    for level, feat in enumerate(both):
        joined = torch.cat([s[level] for s in singles])
        torch.testing.assert_close(feat, joined, rtol=1e-4, atol=1e-5)


def test_pretrained_missing_file_names_the_path(tmp_path: Path):
    path = tmp_path / "nope" / "vitaev2_s.pth"
    with pytest.raises(FileNotFoundError, match=r"vitaev2_s\.pth"):
        ViTAEv2Backbone(pretrained=str(path))


def test_pretrained_round_trip(tmp_path: Path):
    source = _small_backbone()
    path = tmp_path / "backbone.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    torch.manual_seed(123)
    target = ViTAEv2Backbone(pretrained=str(path))
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), name


def test_pretrained_classifier_checkpoint_skips_mismatched_shapes(tmp_path: Path, caplog):
    path = tmp_path / "classifier.pth"
    torch.save({"model": vitaev2_s().state_dict()}, path)
    with caplog.at_level(logging.WARNING, logger="e2e_him.models.backbones.vitaev2"):
        ViTAEv2Backbone(pretrained=str(path))
    text = caplog.text
    # the 3-channel stride-4 first RC cannot fill the 128-channel stride-1 one; the head is unexpected
    assert "shape mismatch" in text and "layers.0.rc.prm.convs.0.0.weight" in text
    assert "unexpected" in text and "head.weight" in text
    assert "missing" in text and "norms.1.weight" in text


def test_pretrained_nothing_matched_raises(tmp_path: Path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(RuntimeError, match=r"other\.pth"):
        load_pretrained(_small_backbone(), path)


def test_config_builds_the_backbone():
    cfg = OmegaConf.load(REPO_ROOT / "conf/model/backbone/vitaev2_s.yaml")
    backbone = instantiate(cfg)
    assert isinstance(backbone, ViTAEv2Backbone)
    assert backbone.channels == [64, 128, 256, 512]


def test_no_norm_on_the_unused_stride_4_output():
    backbone = _small_backbone()
    assert isinstance(backbone.norms[0], torch.nn.Identity)
    assert all(isinstance(n, torch.nn.LayerNorm) for n in backbone.norms[1:])
    every = ViTAEv2Backbone(in_channels=8, variant="s", out_norm_levels=(0, 1, 2, 3))
    assert isinstance(every.norms[0], torch.nn.LayerNorm)
