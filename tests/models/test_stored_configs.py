"""Checkpoints written by an earlier version (earlier_version/README.md) load after the re-layout of issue 23:
their flat network configs, duplicated matcher settings and moved `_target_`s are upgraded, the released
layout's flat state-dict keys land in its sub-networks, and the network computes the same function."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from weights_recipe import recipe_tensor

from e2e_him.models.checkpoint import load_module, stored_config
from e2e_him.models.release.network import nest_flat_key
from e2e_him.models.stored_configs import upgrade_model_config, upgrade_run_config
from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build, plain_config

EARLIER = Path(__file__).parent / "earlier_version"
EXPERIMENT_MODELS = json.loads((EARLIER / "experiment_models.json").read_text())
LAYOUTS = [pytest.param("paper_smoke"), pytest.param("release_smoke", marks=pytest.mark.slow)]


def earlier(name: str) -> dict:
    """What the earlier version's checkpoint of `name` held: `model` config, `state_dict` keys with shapes
    and dtypes, `parameters` names (README.md)."""
    return json.loads((EARLIER / f"{name}.json").read_text())


def today_key(name: str, key: str) -> str:
    return nest_flat_key(key) if name.startswith("release") else key


def earlier_checkpoint(name: str, path: Path) -> dict[str, torch.Tensor]:
    """Write a checkpoint as the earlier version did (its flat config, its keys, the recipe's weights) to
    `path`; returns the weights by earlier key."""
    stored = earlier(name)
    weights = {key: recipe_tensor(key, shape) for key, shape, _ in stored["state_dict"]}
    state = {f"net.{k}": v for k, v in weights.items()}
    torch.save({"state_dict": state, "e2e_him_config": {"model": stored["model"]}}, path)
    return weights


# Where a backbone's starting weights come from is no part of a trained network: since issue 25 every backbone
# config pins its Hub weights (`pretrained_tag`) and the paper experiments start from them (`pretrained:
# timm`); a stored config keeps what its own run started from, and loading one never looks for those weights.
WEIGHT_SOURCE = {"pretrained", "pretrained_tag"}


def _without_weight_source(model: dict) -> dict:
    backbone = model["net"]["backbone"]
    net = {**model["net"], "backbone": {k: v for k, v in backbone.items() if k not in WEIGHT_SOURCE}}
    return {**model, "net": net}


# Recipes changed on purpose since the earlier version (issue 24: the quickstart's trimap at H/8, then its
# half-width backbone stages, then its rate; the long run at 192 px with the quickstart's depth):
# (node path, today's value). Every other value must still match.
_TRIMAP = {("net", "matting", "trimap_stride"): 8}
_HALF_WIDTH = {("net", "backbone", "channels"): [32, 64, 128, 256], ("net", "backbone", "gn_groups"): 16}
_RATE = {("optimizer", "lr"): 2.0e-3, ("scheduler", "warmup_steps"): 100}  # round 4
RECIPE_CHANGES = {
    "experiment=quickstart": {**_TRIMAP, **_HALF_WIDTH, **_RATE, ("min_area",): 45},
    "experiment=quickstart debug=smoke": {**_TRIMAP, **_HALF_WIDTH, **_RATE},
    "experiment=synthetic_long": {**_TRIMAP, ("net", "perception", "dec_layers"): 2, ("min_area",): 45},
    "experiment=synthetic_long debug=smoke": _TRIMAP,
}


def _with_changes(model: dict, changes: dict[tuple[str, ...], object]) -> dict:
    model = json.loads(json.dumps(model))
    for path, value in changes.items():
        node = model
        for key in path[:-1]:
            node = node[key]
        assert path[-1] in node, f"recipe change {path} names no value of the earlier config"
        node[path[-1]] = value
    return model


@pytest.mark.parametrize("overrides", sorted(EXPERIMENT_MODELS))
def test_every_earlier_experiment_config_upgrades_to_todays(overrides: str, tmp_path: Path):
    today = plain_config(compose_config("train", overrides.split(), output_dir=tmp_path).model)
    upgraded = upgrade_model_config(EXPERIMENT_MODELS[overrides])
    expected = _with_changes(upgraded, RECIPE_CHANGES.get(overrides, {}))
    assert _without_weight_source(expected) == _without_weight_source(today)
    assert upgraded["net"]["backbone"]["pretrained"] is None  # the earlier runs started from random weights
    assert upgrade_model_config(today) == today  # today's configs pass unchanged


def test_the_upgrade_moves_flat_arguments_to_their_sub_networks_and_matcher_settings_to_the_criterion():
    old = EXPERIMENT_MODELS["experiment=var1"]
    assert old["net"]["guidance_heads"] == 0 and old["criterion"]["matcher"]["focal_alpha"] == 0.25
    new = upgrade_model_config(old)
    net, criterion = new["net"], new["criterion"]
    assert net["_target_"] == "e2e_him.models.e2e_him.E2EHIM.from_config"
    assert net["guidance"] == {"num_heads": 0, "guidance_dim": 128}
    assert net["matting"]["use_fusion"] is False and net["perception"]["num_queries"] == 20
    assert net["stem"] == {"widths": [32, 32, 64, 128]} and net["hidden_dim"] == 256
    assert criterion["matcher"] == {"cost_class": 1.0, "cost_focal": 1.0, "cost_dice": 1.0}
    assert criterion["num_points"] is None and criterion["focal_gamma"] == 2.0
    assert new["optimizer"]["_target_"] == "e2e_him.models.optim.build_adamw"
    assert new["scheduler"]["_target_"] == "e2e_him.models.optim.cosine_schedule"
    # the matcher's own point setting reaches the criterion where the criterion had none
    old = {"criterion": {"matcher": {"_target_": "e2e_him.losses.HungarianMatcher", "num_points": 64}}}
    assert upgrade_model_config(old)["criterion"] == {"matcher": {}, "num_points": 64}
    release = upgrade_model_config(earlier("release_smoke")["model"])["net"]
    assert release["_target_"] == "e2e_him.models.release.ReleaseE2EHIM.from_config"
    assert release["stem"] == {"widths": [32, 32, 64, 128], "norm_groups": [16, 16, 32, 32]}
    assert release["matting"] == {"trimap_channels": 256, "alpha_channels": 64}
    assert upgrade_run_config(None) is None
    assert upgrade_run_config({"data": {"a": 1}}) == {"data": {"a": 1}}


@pytest.mark.parametrize("name", LAYOUTS)
def test_the_state_dict_keeps_its_keys_shapes_and_parameter_order(name: str):
    """Every earlier key has one key today with the same shape (the released layout's flat keys nested in
    its sub-networks), in the same order, and so do the parameters: a resumed run's optimiser state, kept by
    parameter position, lines up."""
    stored = earlier(name)
    net = build(OmegaConf.create(upgrade_model_config(stored["model"])), "model").net
    today = net.state_dict()
    assert [today_key(name, k) for k, _, _ in stored["state_dict"]] == list(today)
    assert [list(today[today_key(name, k)].shape) for k, _, _ in stored["state_dict"]] == [
        shape for _, shape, _ in stored["state_dict"]
    ]
    assert [today_key(name, p) for p in stored["parameters"]] == [n for n, _ in net.named_parameters()]


@pytest.mark.parametrize("name", LAYOUTS)
def test_an_earlier_checkpoint_loads_with_its_weights_and_computes_the_same_outputs(
    name: str, tmp_path: Path
):
    path = tmp_path / f"{name}.ckpt"
    weights = earlier_checkpoint(name, path)
    module = load_module(path)
    assert module.run_config["model"]["net"]["_target_"].endswith(".from_config")
    assert stored_config(path) == module.run_config  # train's resume warning compares today's layouts
    state = module.net.state_dict()
    assert all(torch.equal(state[today_key(name, k)], v) for k, v in weights.items())
    # Lightning resumes strictly: the earlier keys load into the module with nothing missing or left over
    plain = torch.load(path, weights_only=True)["state_dict"]
    module.load_state_dict(plain, strict=True)
    image = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the outputs were made: another count sums in another order
    try:
        with torch.no_grad():
            out = module.net(image)
    finally:
        torch.set_num_threads(threads)
    golden = np.load(EARLIER / f"{name}_outputs.npz")
    # float32 rounding of another CPU stays far below this; a different function does not (values ~0.1-10)
    close = {"atol": 1e-4, "rtol": 1e-4}
    np.testing.assert_allclose(out["pred_logits"].numpy(), golden["pred_logits"], **close)
    np.testing.assert_allclose(out["alpha_fin"].sum((2, 3)).numpy(), golden["alpha_fin_sums"], rtol=1e-4)
    np.testing.assert_allclose(out["alpha_fin"][:, :, ::8, ::8].numpy(), golden["alpha_fin_grid"], **close)
    np.testing.assert_allclose(
        out["trimap_logits"][..., ::4, ::4].numpy(), golden["trimap_logits_grid"], **close
    )
