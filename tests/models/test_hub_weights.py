"""Backbone weights from the Hugging Face Hub cache (models/backbones/hub_weights.py), offline: a fake cache
in a temporary folder stands in for what `hf download` leaves; with an empty one, a run stops at start with
one message that says what to do."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import timm
import torch
from hub_cache import fake_hub_repo, use_cache
from omegaconf import OmegaConf

from e2e_him.models.backbones.hub_weights import (
    BackboneWeightsError,
    hub_file,
    resolve_pretrained,
    start_model_config,
)
from e2e_him.models.backbones.timm_backbone import TimmResNetBackbone
from e2e_him.models.backbones.vitaev2 import ViTAEv2Backbone
from e2e_him.train import train
from e2e_him.utils.config import compose_config

DROPPED = ("conv1.", "bn1.", "fc.")  # the parts the deep stem and the matting heads replace


def test_the_tests_never_reach_the_hub():
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE, (
        "tests/conftest.py must set HF_HUB_OFFLINE=1 before huggingface_hub loads"
    )


@pytest.fixture
def resnet18_file() -> dict[str, torch.Tensor]:
    """A randomly initialised timm resnet18's state dict, as timm/resnet18.tv_in1k's model.safetensors."""
    torch.manual_seed(7)
    reference = timm.create_model("resnet18", pretrained=False)
    for module in reference.modules():  # non-trivial norm affines, to see them land in the GroupNorms
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(module.weight)
            torch.nn.init.normal_(module.bias)
    return reference.state_dict()


def assert_backbone_holds(backbone: TimmResNetBackbone, state: dict[str, torch.Tensor]) -> None:
    own = backbone.body.state_dict()
    loaded = [
        k for k in state if not k.startswith(DROPPED) and "running_" not in k and "num_batches" not in k
    ]
    assert len(loaded) == len(own) == 57  # every tensor of the GroupNorm body comes from the file
    for key in loaded:
        assert torch.equal(own[key], state[key]), key


def test_timm_fetches_the_pinned_tag_from_the_cache(tmp_path: Path, monkeypatch, resnet18_file, caplog):
    use_cache(monkeypatch, tmp_path)
    fake_hub_repo(tmp_path, "timm/resnet18.tv_in1k", {"model.safetensors": resnet18_file})
    with caplog.at_level(logging.INFO):
        backbone = TimmResNetBackbone("resnet18", pretrained="timm", pretrained_tag="tv_in1k")
    assert_backbone_holds(backbone, resnet18_file)
    assert "loaded 57/57 tensors" in caplog.text and "models--timm--resnet18.tv_in1k" in caplog.text


def test_an_explicit_hub_repository_and_revision(tmp_path: Path, monkeypatch, resnet18_file):
    use_cache(monkeypatch, tmp_path)
    fake_hub_repo(tmp_path, "someone/my-resnet18", {"model.safetensors": resnet18_file}, revision="v1")
    backbone = TimmResNetBackbone("resnet18", pretrained="hf-hub:someone/my-resnet18@v1")
    assert_backbone_holds(backbone, resnet18_file)
    with pytest.raises(BackboneWeightsError, match="hf-hub:<org>/<repo>"):
        hub_file("hf-hub:resnet18")


def test_every_pinned_tag_is_a_timm_hub_repository():
    """The tags of conf/model/backbone/ name weights timm knows, on the Hub under timm/ (no network)."""
    configs = Path(__file__).resolve().parents[2] / "conf" / "model" / "backbone"
    pinned = {}
    for path in sorted(configs.glob("*.yaml")):
        node = OmegaConf.load(path)
        assert "pretrained_tag" in node, f"{path.name}: pin the Hub weights (pretrained_tag) or say null"
        if node.pretrained_tag is not None:
            pinned[path.stem] = hub_file("timm", node.name, node.pretrained_tag)
    assert pinned["resnet50"].repo_id == "timm/resnet50.tv_in1k"  # torchvision's, the paper's time
    assert pinned["swin_tiny"].repo_id == "timm/swin_tiny_patch4_window7_224.ms_in1k"
    assert pinned["swin_base"].repo_id == "timm/swin_base_patch4_window7_224.ms_in1k"
    assert all(f.filename == "model.safetensors" for f in pinned.values())
    assert "vitaev2_s" not in pinned  # no copy on the Hub that we know of


def test_an_empty_cache_stops_with_one_message_that_says_what_to_do(tmp_path: Path, monkeypatch):
    use_cache(monkeypatch, tmp_path / "empty")
    with pytest.raises(BackboneWeightsError) as info:
        TimmResNetBackbone("resnet50", pretrained="timm", pretrained_tag="tv_in1k")
    message = str(info.value)
    expected = (
        tmp_path / "empty" / "models--timm--resnet50.tv_in1k" / "snapshots" / "<commit>" / "model.safetensors"
    )
    assert "model.safetensors of https://huggingface.co/timm/resnet50.tv_in1k" in message  # the file
    assert str(expected) in message  # where the cache expects it
    assert "HF_HUB_OFFLINE is set" in message
    assert "model.net.backbone.pretrained=null" in message  # a deliberate run from random weights


def test_vitaev2_has_no_hub_copy_and_says_where_its_weights_are(tmp_path: Path, monkeypatch):
    with pytest.raises(BackboneWeightsError, match="ViTAE-Transformer") as info:
        ViTAEv2Backbone(pretrained="timm")
    assert "model.net.backbone.pretrained=/path/to/file" in str(info.value)
    # a copy someone put on the Hub (safetensors) loads like a local file
    use_cache(monkeypatch, tmp_path)
    torch.manual_seed(3)
    source = ViTAEv2Backbone(window_size=7)
    fake_hub_repo(tmp_path, "someone/vitaev2-s", {"model.safetensors": source.state_dict()})
    target = ViTAEv2Backbone(pretrained="hf-hub:someone/vitaev2-s")
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_missing_local_file_is_named(tmp_path: Path):
    with pytest.raises(BackboneWeightsError, match=r"nope\.pth.*pretrained=null"):
        resolve_pretrained(str(tmp_path / "nope.pth"))
    assert resolve_pretrained(None) is None


def test_whole_network_weights_need_no_backbone_weights(tmp_path: Path, monkeypatch):
    use_cache(monkeypatch, tmp_path / "empty")
    cfg = compose_config("train", ["experiment=paper_r50"], tmp_path)
    # fine-tuning or resuming: every weight comes from that file, nothing is fetched, the run's config keeps
    # its own value
    built = start_model_config(cfg.model, "/runs/a/last.ckpt")
    assert built.net.backbone.pretrained is None and cfg.model.net.backbone.pretrained == "timm"
    with pytest.raises(BackboneWeightsError, match=r"resnet50\.tv_in1k"):
        start_model_config(cfg.model, None)
    smoke = compose_config("train", ["experiment=paper_r50", "debug=smoke"], tmp_path).model
    assert start_model_config(smoke) is smoke  # random weights, on purpose: nothing to fetch


def test_a_training_run_stops_before_building_any_data(tmp_path: Path, monkeypatch):
    """The weights are looked for first: a data config that cannot even be built is never reached."""
    use_cache(monkeypatch, tmp_path / "empty")
    overrides = ["experiment=paper_r50", "debug=smoke", "model.net.backbone.pretrained=timm"]
    cfg = compose_config("train", [*overrides, "data._target_=no.such.DataModule"], tmp_path / "run")
    with pytest.raises(BackboneWeightsError, match=r"models--timm--resnet50\.tv_in1k"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # not even the run dir was made


def test_own_stage_widths_with_imagenet_weights_stop_before_any_fetch(tmp_path: Path, monkeypatch):
    """The quickstart's half-width stages take no ImageNet weights: asking for them says so at start, before
    the cache is looked at (not "not in the cache"); at ResNet-18's own widths the fetch goes on as usual."""
    use_cache(monkeypatch, tmp_path / "empty")
    cfg = compose_config("train", ["model.net.backbone.pretrained=timm"], tmp_path)  # the quickstart's widths
    assert list(cfg.model.net.backbone.channels) == [32, 64, 128, 256]
    with pytest.raises(ValueError, match=r"timm's widths only; set model.net.backbone.channels=null"):
        start_model_config(cfg.model)
    cfg.model.net.backbone.channels = None
    with pytest.raises(BackboneWeightsError, match=r"resnet18\.tv_in1k"):
        start_model_config(cfg.model)
