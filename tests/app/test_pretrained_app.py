"""`python -m e2e_him.train` with a paper experiment's backbone weights from the Hugging Face cache, offline
(HF_HUB_OFFLINE=1, HF_HUB_CACHE at a cache the test builds): the weights reach the run's checkpoint; with an
empty cache the run stops at start with one message."""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from app_runner import run_app
from hub_cache import fake_hub_repo

# the smoke-sized paper_r50 on resnet18 (whose pinned weights are timm/resnet18.tv_in1k), asking for the
# paper experiments' default `timm` that debug=smoke turns off, and a learning rate of 0 so that one training
# step leaves the weights as loaded
SMOKE_R18 = [
    "experiment=paper_r50",
    "debug=smoke",
    "model/backbone=resnet18",
    "model.net.backbone.pretrained=timm",
]


def _offline(monkeypatch, cache: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))


def test_without_a_cached_copy_the_run_stops_at_start(tmp_path: Path, monkeypatch):
    _offline(monkeypatch, tmp_path / "empty_cache")
    proc = run_app("train", *SMOKE_R18, f"run_dir={tmp_path / 'run'}", check=False, timeout=300)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "model.safetensors of https://huggingface.co/timm/resnet18.tv_in1k" in out
    assert str(tmp_path / "empty_cache" / "models--timm--resnet18.tv_in1k" / "snapshots") in out
    assert "model.net.backbone.pretrained=null" in out
    assert "BackboneWeightsError" in out and "Traceback" in out  # HYDRA_FULL_ERROR=1 in app_runner
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before training


def test_the_cached_weights_reach_the_trained_network(tmp_path: Path, monkeypatch):
    torch.manual_seed(11)
    reference = timm.create_model("resnet18", pretrained=False)
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(module.weight)
    state = reference.state_dict()
    cache = tmp_path / "hf_cache"
    fake_hub_repo(cache, "timm/resnet18.tv_in1k", {"model.safetensors": state})
    _offline(monkeypatch, cache)
    run_dir = tmp_path / "run"
    run_app(
        "train", *SMOKE_R18, f"run_dir={run_dir}", "model.optimizer.lr=0", "trainer.max_steps=1",
        "data.train.num_samples=2", "data.val.num_samples=2", "picture_images=0", "test=false",
    )  # fmt: skip
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    prefix = "net.backbone.body."
    body = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    compared = [k for k in state if k in body]
    assert len(compared) == len(body) == 57  # every tensor of the GroupNorm body (the stem's are replaced)
    for key in compared:
        assert torch.equal(body[key], state[key]), key
    # the run's stored config says where its backbone started: the card of a published copy reports it
    assert ckpt["e2e_him_config"]["model"]["net"]["backbone"]["pretrained"] == "timm"
    assert "resnet18.tv_in1k" in (run_dir / "train.log").read_text()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
