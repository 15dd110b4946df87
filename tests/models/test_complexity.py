"""scripts/complexity.py: its parts cover the whole network and its MAC count is right on a known case."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from model_builders import REPO_ROOT, build_small_net

SCRIPT = REPO_ROOT / "scripts" / "complexity.py"


@pytest.fixture(scope="module")
def complexity():
    spec = importlib.util.spec_from_file_location("complexity_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parts_cover_every_parameter_and_mac(complexity):
    net = build_small_net("resnet18")
    result = complexity.measure(net, (64, 64), "cpu", repeats=0)
    total = sum(p.numel() for p in net.parameters()) / 1e6
    assert result["params_M"] == round(total, 3)
    assert sum(result["params_M_by_part"].values()) == pytest.approx(total, abs=1e-2)
    assert sum(result["gmacs_by_part"].values()) == pytest.approx(result["gmacs"], abs=0.02)
    assert result["gflops_torch_counter"] == pytest.approx(2 * result["gmacs"], abs=0.02)
    assert result["gmacs_by_part"]["backbone"] > 0 and result["gmacs_by_part"]["refiner"] > 0


def test_counter_reports_flops_as_twice_the_macs():
    # One 1x1 convolution 4 -> 8 on a 3x5 map: 3 * 5 * 4 * 8 = 480 MACs, which torch counts as 960 FLOPs.
    counter = torch.utils.flop_counter.FlopCounterMode(display=False)
    with counter:
        torch.nn.Conv2d(4, 8, 1, bias=False)(torch.randn(1, 4, 3, 5))
    assert counter.get_total_flops() == 960


def test_config_builds_the_paper_model_with_overrides(complexity):
    cfg = complexity.compose_net(
        ["model/backbone=resnet18", "model.net.perception.num_queries=7", "model.net.hidden_dim=64"]
    )
    assert cfg.backbone._target_.endswith("TimmResNetBackbone") and cfg.backbone.name == "resnet18"
    assert cfg.perception.num_queries == 7 and cfg.hidden_dim == 64


@pytest.mark.slow
def test_released_layout_is_measured_by_part(complexity):
    """`complexity.py model=release_swint`: the authors' 70.45 M parameters (their release notes: 70.45 M
    and 283 GMAC at 640 x 640; here at 128 x 128, 1/25 of the pixels), every parameter in a part."""
    from hydra.utils import instantiate

    torch.manual_seed(0)
    net = instantiate(complexity.compose_net(["model=release_swint"]))
    result = complexity.measure(net, (128, 128), "cpu", repeats=0)
    assert result["layout"] == "ReleaseE2EHIM" and result["params_M"] == pytest.approx(70.453, abs=1e-3)
    assert sum(result["params_M_by_part"].values()) == pytest.approx(result["params_M"], abs=1e-2)
    assert sum(result["gmacs_by_part"].values()) == pytest.approx(result["gmacs"], abs=0.02)
    assert result["gmacs_by_part"]["fusion"] > 0 and result["gmacs_by_part"]["trimap_features"] > 0
