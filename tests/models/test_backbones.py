"""Backbones behind the contract, every config of conf/model/backbone/ (as timm tests every registered model):
shapes at odd sizes, the config files; timm's norms, Swin windows, local weights."""

from __future__ import annotations

import logging

import pytest
import timm
import torch
from model_builders import BACKBONE_CONF, BACKBONES, build_backbone
from torch import nn

from e2e_him.models.backbones import Backbone, validate_backbone
from e2e_him.models.backbones.timm_backbone import TimmResNetBackbone, TimmSwinBackbone, convert_batchnorm

# every config of conf/model/backbone/ must be listed here (a new one fails until it is)
EXPECTED_CHANNELS = {
    "resnet18": [64, 128, 256, 512],
    "resnet50": [256, 512, 1024, 2048],
    "swin_tiny": [96, 192, 384, 768],
    "swin_tiny_release": [96, 192, 384, 768],
    "swin_base": [128, 256, 512, 1024],
    "vitaev2_s": [64, 128, 256, 512],
}


def test_the_contract_tests_cover_every_backbone_config():
    assert len(BACKBONES) >= 6 and "swin_tiny_release" in BACKBONES
    assert sorted(EXPECTED_CHANNELS) == BACKBONES


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("image_size", [(320, 320), (256, 384)])  # not multiples of 7 * 32 = 224
def test_contract_shapes(name, image_size):
    backbone = build_backbone(name).eval()
    validate_backbone(backbone)
    h, w = image_size
    with torch.no_grad():
        features = backbone(torch.randn(1, 128, h // 4, w // 4))
    assert backbone.channels == EXPECTED_CHANNELS.get(name), f"add {name} to EXPECTED_CHANNELS"
    assert backbone.strides == [4, 8, 16, 32]
    assert [tuple(f.shape) for f in features] == [
        (1, c, h // s, w // s) for c, s in zip(backbone.channels, backbone.strides)
    ]
    assert all(f.is_contiguous() for f in features)


def test_validate_backbone_rejects_a_module_without_the_contract():
    with pytest.raises(TypeError, match="channels"):
        validate_backbone(nn.Conv2d(3, 3, 1))
    bad = Backbone()
    bad.channels, bad.strides = [8, 16, 32], [8, 16, 32]
    with pytest.raises(ValueError, match="strides"):
        validate_backbone(bad)


@pytest.mark.parametrize("name", BACKBONES)
def test_config_files_place_the_backbone_under_model_net(name):
    path = BACKBONE_CONF / f"{name}.yaml"
    text = path.read_text()
    assert text.splitlines()[0] == "# @package model.net.backbone"
    assert "_target_:" in text
    assert "\npretrained: null" in text


def test_resnet_groupnorm_keeps_the_batchnorm_affine():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(64)
    nn.init.normal_(bn.weight)
    nn.init.normal_(bn.bias)
    gn = convert_batchnorm(nn.Sequential(bn), "gn", 32)[0]
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 32
    assert torch.equal(gn.weight, bn.weight) and torch.equal(gn.bias, bn.bias)


@pytest.mark.parametrize(("norm", "kind"), [("gn", nn.GroupNorm), ("bn", nn.BatchNorm2d)])
def test_resnet_norm_option(norm, kind):
    backbone = TimmResNetBackbone("resnet18", norm=norm)
    norms = [m for m in backbone.body.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
    # resnet18 has 2 norms in each of 8 blocks + 3 downsample norms = 19 (the stem's bn1 is gone)
    assert len(norms) == 19 and all(type(m) is kind for m in norms)


def test_resnet_frozen_batchnorm_has_nothing_to_train():
    backbone = TimmResNetBackbone("resnet18", norm="frozen_bn")
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in backbone.body.modules())
    trainable = {n for n, _ in backbone.named_parameters()}
    assert not any(".bn" in n or "downsample.1" in n for n in trainable)


def test_resnet_stage_widths_switch():
    # ours (model.net.backbone.channels): narrower stages for CPU runs at larger images; the maps follow them
    backbone = TimmResNetBackbone("resnet18", channels=[16, 32, 64, 128], gn_groups=8).eval()
    validate_backbone(backbone)
    with torch.no_grad():
        features = backbone(torch.randn(2, 128, 16, 24))
    assert backbone.channels == [16, 32, 64, 128]
    shapes = [(2, 16, 16, 24), (2, 32, 8, 12), (2, 64, 4, 6), (2, 128, 2, 3)]
    assert [tuple(f.shape) for f in features] == shapes
    full = sum(p.numel() for p in TimmResNetBackbone("resnet18").parameters())
    assert sum(p.numel() for p in backbone.parameters()) < full / 10  # width^2: about 1/16 of the weights
    with pytest.raises(ValueError, match="4 stages"):
        TimmResNetBackbone("resnet18", channels=[16, 32, 64])
    with pytest.raises(ValueError, match="ImageNet weights exist for timm's widths only"):
        TimmResNetBackbone("resnet18", channels=[16, 32, 64, 128], pretrained="timm")


def test_unknown_norm_is_an_error():
    with pytest.raises(ValueError, match="batchnorm"):
        TimmResNetBackbone("resnet18", norm="batchnorm")


def test_swin_keeps_shifted_7x7_windows_in_every_stage():
    # timm would shrink the last stage's window to its construction-time grid (7 at 224) and drop the shift.
    backbone = TimmSwinBackbone()
    for stage in backbone.body.layers:
        assert [b.window_size for b in stage.blocks][:2] == [(7, 7), (7, 7)]
        assert [b.shift_size for b in stage.blocks][:2] == [(0, 0), (3, 3)]


def test_missing_pretrained_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "no_such_weights.pth"
    with pytest.raises(FileNotFoundError, match=r"no_such_weights\.pth"):
        TimmResNetBackbone("resnet18", pretrained=str(path))
    with pytest.raises(FileNotFoundError, match=r"no_such_weights\.pth"):
        TimmSwinBackbone(pretrained=str(path))


def test_a_file_with_no_matching_entry_is_an_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(3)}, path)
    with pytest.raises(RuntimeError, match="none of its entries"):
        TimmResNetBackbone("resnet18", pretrained=str(path))


def test_resnet_loads_a_local_timm_state_dict(tmp_path, caplog):
    torch.manual_seed(1)
    reference = timm.create_model("resnet18", pretrained=False)
    nn.init.normal_(reference.layer3[1].bn2.weight)  # non-trivial BN affine, to see it land in the GroupNorm
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    with caplog.at_level(logging.INFO):
        backbone = TimmResNetBackbone("resnet18", pretrained=str(path))
    assert torch.equal(backbone.body.layer2[0].conv1.weight, reference.layer2[0].conv1.weight)
    assert torch.equal(backbone.body.layer3[1].bn2.weight, reference.layer3[1].bn2.weight)
    assert "loaded 57/57 tensors" in caplog.text  # every body tensor of the GN model (convs + GN affines)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # only by-design leftovers


def test_resnet_warns_about_unexpected_keys(tmp_path, caplog):
    reference = timm.create_model("resnet18", pretrained=False)
    state = {**reference.state_dict(), "layer9.weight": torch.zeros(1)}
    path = tmp_path / "resnet18_extra.pth"
    torch.save({"state_dict": state}, path)
    with caplog.at_level(logging.WARNING):
        TimmResNetBackbone("resnet18", pretrained=str(path))
    assert "layer9.weight" in caplog.text


def test_swin_loads_a_local_timm_state_dict(tmp_path):
    torch.manual_seed(2)
    reference = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)
    path = tmp_path / "swin_t.pth"
    torch.save(reference.state_dict(), path)
    backbone = TimmSwinBackbone(pretrained=str(path))
    ours, theirs = backbone.body.layers[2].blocks[1], reference.layers[2].blocks[1]
    assert torch.equal(ours.attn.relative_position_bias_table, theirs.attn.relative_position_bias_table)
    assert torch.equal(ours.mlp.fc1.weight, theirs.mlp.fc1.weight)
    assert torch.equal(backbone.body.patch_embed.norm.weight, reference.patch_embed.norm.weight)
    assert backbone.body.patch_embed.proj.weight.shape == (96, 128, 1, 1)  # the new 1x1 conv from the stem
