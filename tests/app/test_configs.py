"""Every config group option composes; the default experiment builds; config mistakes fail early, by name."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from e2e_him import CONF_DIR
from e2e_him.data.datamodule import HIMDataModule
from e2e_him.models.module import E2EHIMModule
from e2e_him.utils import hardware
from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import ConfigError, build, build_dict, build_loggers
from e2e_him.utils.resolvers import find_conf, mode_for, monitor_for


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


GROUPS = [
    "data",
    "model",
    "model/backbone",
    "model/recipe",
    "trainer",
    "logger",
    "callbacks",
    "debug",
    "experiment",
    "paths",
    "hydra",
]
EXPERIMENTS = _options("experiment")


def test_the_suite_has_the_paper_experiments():
    expected = {"quickstart", "paper_r50", "p3m", *(f"var{i}" for i in range(1, 7))}
    expected |= {f"backbone_{b}" for b in ("swin_tiny", "swin_base", "vitaev2_s")}
    assert expected <= set(EXPERIMENTS)


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in _options(g)], ids=lambda v: str(v).replace("/", ".")
)
def test_every_group_option_composes(group: str, option: str, tmp_path: Path):
    key = "hydra" if group == "hydra" else group
    cfg = compose_config("train", [f"{key}={option}"], output_dir=tmp_path)
    # every interpolation resolves (a typo in `${...}` fails here)
    OmegaConf.to_container(cfg, resolve=True)
    assert cfg.paths.output_dir == str(tmp_path)


@pytest.mark.parametrize("config_name", ["eval", "predict", "export"])
def test_the_other_apps_compose(config_name: str, tmp_path: Path):
    overrides = {"predict": ["ckpt_path=x.ckpt", "input=y"], "export": ["ckpt_path=x.ckpt"]}.get(
        config_name, ["data=synthetic"]
    )
    cfg = compose_config(config_name, overrides, tmp_path)
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert plain["task_name"] == config_name
    if config_name == "eval":
        assert plain["data"]["max_instances"] is None  # no model: evaluation keeps every person
        assert compose_config("eval", [], tmp_path).get("data") is None  # null: the checkpoint's data


def test_quickstart_instantiates(tmp_path: Path):
    cfg = compose_config("train", ["experiment=quickstart"], output_dir=tmp_path)
    assert cfg.experiment_name == "quickstart"
    module = build(cfg.model, "model")
    datamodule = build(cfg.data, "data")
    callbacks = build_dict(cfg.callbacks, "callbacks")
    loggers = build_loggers(cfg.logger)
    trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers)
    assert isinstance(module, E2EHIMModule) and isinstance(datamodule, HIMDataModule)
    assert isinstance(trainer, L.Trainer) and trainer.max_epochs == cfg.trainer.max_epochs
    assert {type(lg).__name__ for lg in loggers} == {"CSVLogger", "WandbLogger"}
    assert module.net.num_queries == cfg.model.net.perception.num_queries == datamodule.max_instances
    assert cfg.callbacks.model_checkpoint.monitor == "val/REC_0.5"


@pytest.mark.parametrize(("flags", "precision"), [({"avx512_bf16"}, "bf16-mixed"), ({"avx2"}, "32-true")])
def test_the_quickstart_trains_in_bf16_where_the_cpu_computes_it(monkeypatch, tmp_path, flags, precision):
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(hardware, "_cpu_flags", lambda: flags)
    assert compose_config("train", [], output_dir=tmp_path).trainer.precision == precision
    smoke = compose_config("train", ["debug=smoke"], output_dir=tmp_path)
    assert smoke.trainer.precision == "32-true"  # smoke runs compare numbers with float32 apps


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_synthetic_data(experiment: str, tmp_path: Path):
    cfg = compose_config("train", [f"experiment={experiment}", "data=synthetic"], output_dir=tmp_path)
    assert cfg.experiment_name == experiment
    assert cfg.data.train._target_.endswith("SyntheticPeople")
    assert cfg.model.net.backbone.in_channels == cfg.model.net.stem.widths[-1]


def test_paper_defaults_match_section_iv_b(tmp_path: Path):
    cfg = compose_config("train", ["experiment=paper_r50"], output_dir=tmp_path)
    net, crit = cfg.model.net, cfg.model.criterion
    assert (net.guidance.num_heads, net.perception.num_queries, net.hidden_dim) == (2, 20, 256)
    assert net.perception.dec_layers == 6
    assert cfg.model.net.backbone.name == "resnet50"
    assert cfg.model.optimizer.lr == pytest.approx(8e-5) and cfg.model.weight_decay == pytest.approx(5e-4)
    assert list(cfg.model.optimizer.betas) == [0.9, 0.999]
    lambdas = [crit[f"lambda_{k}"] for k in ("c", "s", "b", "d", "t", "alpha", "pu", "gu", "p", "m")]
    assert lambdas == [5, 1, 0.1, 1, 10, 5, 3, 5, 1, 1]
    assert (crit.background_weight, crit.human_weight) == (0.1, 1.0)
    assert cfg.trainer.max_epochs == 40 and list(cfg.data.crop_size) == [640, 640]
    assert cfg.data.batch_size * cfg.trainer.devices == 4


@pytest.mark.parametrize(
    "experiment,expected",
    [
        ("var1", (0, 20, False, True)),
        ("var2", (4, 20, True, True)),
        ("var3", (2, 10, True, True)),
        ("var4", (2, 50, True, True)),
        ("var5", (2, 20, False, True)),
        ("var6", (2, 20, True, False)),
    ],
)
def test_table_vii_variants(experiment: str, expected: tuple, tmp_path: Path):
    net = compose_config("train", [f"experiment={experiment}"], output_dir=tmp_path).model.net
    got = (
        net.guidance.num_heads,
        net.perception.num_queries,
        net.matting.use_fusion,
        net.matting.use_refiner,
    )
    assert got == expected
    assert net.backbone.name == "resnet50"


def test_the_released_layout_passes_the_clamp_gradient_only_when_trained_from_random_weights(tmp_path: Path):
    """Off as in the release for fine-tuning its weights (experiment=release_swint), on for the run from
    random weights (docs/training.md, section 9)."""
    release = compose_config("train", ["experiment=release_swint"], output_dir=tmp_path)
    synthetic = compose_config("train", ["experiment=release_synthetic"], output_dir=tmp_path)
    assert release.model.net.straight_through_clamp is False
    assert synthetic.model.net.straight_through_clamp is True
    assert synthetic.trainer.precision == "bf16-mixed" and synthetic.data.train.image_size == [128, 128]


def test_p3m_monitors_a_matting_error(tmp_path: Path):
    cfg = compose_config("train", ["experiment=p3m"], output_dir=tmp_path)
    assert list(cfg.model.metrics) == ["human"]
    assert (cfg.callbacks.model_checkpoint.monitor, cfg.callbacks.model_checkpoint.mode) == ("val/MSE", "min")
    assert monitor_for(["instance"]) == "val/REC_0.5" and mode_for("val/REC_0.5") == "max"
    assert mode_for("val/SAD") == "min" and mode_for("val/EMSE_0.5") == "min"
    assert mode_for("val/EMAD_0.75") == "min" and mode_for("val/ACC_0.75") == "max"
    assert monitor_for(["imq", "instance"]) == "val/IMQ_mse"
    assert monitor_for(["imq", "instance"], "instance") == monitor_for(["instance"])
    assert monitor_for(["human"], "instance") == "val/MSE"
    cfg = compose_config("train", ["experiment=quickstart", "data=p3m"], output_dir=tmp_path)
    assert cfg.callbacks.model_checkpoint.monitor == "val/MSE"
    with pytest.raises(ValueError, match="no metric to monitor"):
        monitor_for([])


# ------------------------------------------------------------------------------------- early, named errors
def test_unknown_group_option_names_it(tmp_path: Path):
    with pytest.raises(MissingConfigException, match="var9"):
        compose_config("train", ["experiment=var9"], output_dir=tmp_path)
    with pytest.raises(MissingConfigException, match="resnet51"):
        compose_config("train", ["model/backbone=resnet51"], output_dir=tmp_path)


def test_misspelt_key_on_the_command_line_names_it(tmp_path: Path):
    with pytest.raises(ConfigCompositionException, match="hiden_dim") as info:
        compose_config("train", ["model.net.hiden_dim=8"], output_dir=tmp_path)
    assert isinstance(info.value.__cause__, (ConfigAttributeError, ConfigKeyError))


def test_misspelt_key_in_a_config_file_fails_at_build_naming_node_and_key(tmp_path: Path):
    # what a typo inside an experiment file produces: an extra key that reaches the constructor
    cfg = compose_config("train", ["+model.net.hiden_dim=8"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"'model'.*hiden_dim"):
        build(cfg.model, "model")
    cfg = compose_config("train", ["+data.crop_sise=[64,64]"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"'data'.*crop_sise"):
        build(cfg.data, "data")


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_takes_a_training_step_on_synthetic_data(experiment: str, tmp_path: Path):
    """`experiment=<name> debug=smoke`: the experiment's backbone and switches, tiny widths, one step (the
    released layout: `debug=smoke_release`, its own widths); its loss reaches every trainable parameter, as
    DDP requires."""
    import torch

    from e2e_him.data.targets import complete_batch

    debug = "smoke_release" if experiment.startswith("release") else "smoke"
    cfg = compose_config("train", [f"experiment={experiment}", f"debug={debug}"], output_dir=tmp_path)
    torch.manual_seed(0)
    module, datamodule = build(cfg.model, "model"), build(cfg.data, "data")
    module.setup("fit")  # the checks a run makes first
    datamodule.setup("fit")
    batch = complete_batch(next(iter(datamodule.train_dataloader())))
    losses = module.criterion(module.train_forward(batch["image"]), batch)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"])
    unreached = [n for n, p in module.net.named_parameters() if p.requires_grad and p.grad is None]
    assert unreached == [], f"the loss leaves {len(unreached)} parameters without gradient: {unreached[:5]}"
    grads = [p.grad for p in module.net.backbone.parameters() if p.requires_grad]
    assert any(g.abs().sum() > 0 for g in grads), "no gradient reached the backbone"


def test_the_configs_of_a_checkout_else_those_a_wheel_carries(tmp_path: Path):
    checkout, packaged, cwd, empty = (
        tmp_path / n for n in ("checkout", "site/e2e_him/conf", "work", "empty")
    )
    for conf in (checkout / "conf", packaged):
        conf.mkdir(parents=True)
        (conf / "train.yaml").write_text("{}")
    cwd.mkdir()
    empty.mkdir()
    # a source checkout (editable install, PYTHONPATH=src): its conf/, runs under the checkout
    assert find_conf(source=checkout, packaged=packaged, cwd=cwd) == (checkout, checkout / "conf")
    # an installed wheel: the configs inside the package, runs under the working directory
    assert find_conf(source=empty, packaged=packaged, cwd=cwd) == (cwd, packaged)
    # neither: the source folder, which Hydra's error then names
    assert find_conf(source=empty, packaged=empty / "conf", cwd=cwd) == (empty, empty / "conf")
    # this repository, from any working directory (a notebook kernel, a script elsewhere)
    assert find_conf(cwd=empty) == find_conf() == (Path(__file__).resolve().parents[2], CONF_DIR)
    assert (CONF_DIR / "train.yaml").is_file()
