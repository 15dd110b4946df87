"""What the demo page says about the loaded model (e2e_him.web.model_info): for a checkpoint of this suite,
a Hub folder, an ONNX model and the authors' release, which file, network and layout, on which device and in
which precision."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from e2e_him.export import export_onnx
from e2e_him.models.hub_export import save_as_hub
from e2e_him.models.model_card import RELEASE_TERMS
from e2e_him.predictor.mattes import build_predictor
from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build, plain_config
from e2e_him.web.model_info import describe_model, model_headline, model_markdown, weights_kind


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """The smoke-sized paper network, and a checkpoint of it as e2e_him.train writes one."""
    tmp = tmp_path_factory.mktemp("model_info")
    cfg = compose_config("train", ["debug=smoke"], output_dir=tmp / "run")
    torch.manual_seed(0)
    module = build(cfg.model, "model").eval()
    module.run_config = {"model": plain_config(cfg.model), "data": plain_config(cfg.data)}
    path = tmp / "smoke.ckpt"
    torch.save({"state_dict": module.state_dict(), "e2e_him_config": module.run_config}, path)
    return module, path


def test_a_checkpoint_of_this_suite(smoke):
    module, path = smoke
    millions = sum(p.numel() for p in module.net.parameters()) / 1e6  # the quickstart's half-width ResNet-18
    facts = describe_model(
        build_predictor(path, precision="fp32", eval_size=320, score_threshold=0.3), str(path)
    )
    assert facts["kind"] == "a checkpoint of this suite" and facts["backend"] == "PyTorch"
    assert (
        facts["device"] == "cpu" and facts["precision"] == "float32" and "channels-last" in facts["options"]
    )
    assert facts["network"][0].startswith("Layout: the paper's layout (`E2EHIM`")
    assert 3 < millions < 5 and "Queries: 10;" in facts["network"][2]
    assert f"parameters: {millions:.1f} M" in facts["network"][2]
    assert facts["backbone"] == "resnet18" and facts["score_threshold"] == 0.3 and not facts["non_commercial"]
    headline = model_headline(facts)
    assert (
        "`smoke.ckpt`" in headline and "resnet18 backbone" in headline and "**cpu**, **float32**" in headline
    )
    details = model_markdown(facts)
    assert "p(human) > 0.3" in details and "working size (long side) 320 px" in details


def test_a_hub_folder_and_an_onnx_model(smoke, tmp_path: Path):
    module, _ = smoke
    folder = save_as_hub(module, tmp_path / "hub")
    facts = describe_model(build_predictor(folder, precision="fp32"), str(folder))
    assert facts["kind"].startswith("a Hub folder") and facts["network"][0].startswith("Layout: the paper's")
    metadata = {
        "score_threshold": 0.4,
        "min_area": 5.0,
        "checkpoint": "best.ckpt",
        "model": module.run_config["model"],
    }
    onnx = export_onnx(
        module.net, tmp_path / "smoke.onnx", (64, 64), exporter="torchscript", metadata=metadata
    )
    facts = describe_model(build_predictor(onnx, backend="auto"), str(onnx))
    assert facts["kind"] == "an ONNX model of `e2e_him.export` (from `best.ckpt`)"
    assert facts["backend"] == "onnxruntime" and facts["precision"] == "float32"
    assert facts["network"][0].startswith("Layout: the paper's") and facts["score_threshold"] == 0.4


def test_the_authors_release_says_so_and_carries_their_terms():
    source = {"converted_from": "swintiny.ckpt", "layout": "release_swint"}
    assert weights_kind("downloads/swintiny.ckpt", None, source).startswith("the authors' released file")
    converted = weights_kind("checkpoints/release_swint.ckpt", None, source)
    assert converted == "a checkpoint converted from the authors' release (`swintiny.ckpt`)"
    tuned = weights_kind("run/best.ckpt", None, {"init_weights": "release.ckpt", "from": source})
    assert tuned == "a checkpoint of this suite, fine-tuned from `release.ckpt`"
    facts = {"file": "swintiny.ckpt", "kind": "k", "network": ["Layout: the authors' released layout"],
             "backbone": "swin_tiny_patch4_window7_224", "backend": "PyTorch", "device": "cuda:0",
             "precision": "bf16", "options": [], "score_threshold": 0.5, "min_area": 1000.0,
             "working_size": None, "non_commercial": True}  # fmt: skip
    assert RELEASE_TERMS in model_markdown(facts) and "the photo's own" in model_markdown(facts)
