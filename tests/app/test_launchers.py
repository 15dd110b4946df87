"""Sweeps past one process: the submitit launchers (local, SLURM settings), Optuna searches, and the guards
and resolvers that keep every process of a run in one run dir."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from e2e_him import CONF_DIR
from e2e_him.utils.devices import check_launcher
from e2e_him.utils.instantiate import ConfigError
from e2e_him.utils.resolvers import optuna_direction, rank_suffix, run_stamp

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
# no last.ckpt beside the best one: every trial's checkpoint is 100-300 MB of disk
SMALL = [
    "debug=smoke",
    "picture_images=0",
    "callbacks.val_image_panels.dirpath=null",
    "callbacks.epoch_checkpoint=null",
]


def run(cmd: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def write_crowd_folder(root: Path, images: int = 3, people: int = 12, size: int = 128) -> None:
    """An instance folder (images/<stem>.png, alphas/<stem>/NN.png) of images holding `people` people each."""
    rng = np.random.default_rng(0)
    for i in range(images):
        (root / "alphas" / f"crowd{i}").mkdir(parents=True)
        photo = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        for j in range(people):
            alpha = np.zeros((size, size), np.uint8)
            left = 4 + j * (size - 8) // people
            alpha[16 : size - 8, left : left + 6] = 255
            photo[alpha > 0] = (60 + 15 * j, 200 - 10 * j, 90)
            Image.fromarray(alpha).save(root / "alphas" / f"crowd{i}" / f"{j:02d}.png")
        (root / "images").mkdir(exist_ok=True)
        Image.fromarray(photo).save(root / "images" / f"crowd{i}.png")


@pytest.mark.slow
def test_submitit_local_sweep_of_variants_with_more_people_than_queries(tmp_path: Path):
    data, sweep = tmp_path / "crowds", tmp_path / "sweep"
    write_crowd_folder(data)
    crowd_data = [
        "data=instance_folder",
        f"data.root={data}",
        "data.crop_size=[128,128]",
        "data.eval_size=128",
        "data.augment.resize_long_side=null",
        "data.min_visible_pixels=20",
    ]
    cmd = [sys.executable, "-m", "e2e_him.train", "-m", "hydra/launcher=local", "experiment=var3,var1"]
    run([*cmd, *SMALL, *crowd_data, f"hydra.sweep.dir={sweep}"])
    jobs = {p.name.split("_", 1)[1]: p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()}
    assert sorted(jobs) == ["var1", "var3"]
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2  # each run was a submitit job
    # Var3's 10 queries: the 12-person images are cut to their 10 largest people, said once in the run's log
    log3 = (jobs["var3"] / "train.log").read_text()
    assert "3 of 3 image(s) hold more people than the model's 10 queries (up to 12)" in log3
    assert "queries" not in (jobs["var1"] / "train.log").read_text()  # 20 queries: all fit

    out = run([sys.executable, str(REPO / "scripts" / "collect_table.py"), str(sweep)], timeout=300)
    assert "Table VII" in out.stdout and "2 run(s), 0 without metrics" in out.stdout
    with (sweep / "table7.csv").open() as f:
        rows = {r["Experiment"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"var1", "var3"} and all(r["status"] == "ok" for r in rows.values())
    assert (rows["var3"]["Query Number"], rows["var1"]["Query Number"]) == ("10", "20")


@pytest.mark.slow
def test_optuna_search_of_three_trials_returns_the_best(tmp_path: Path):
    sweep = tmp_path / "search"
    search = ["hparams_search=quickstart_optuna", "hydra.sweeper.n_trials=3", "data.train.num_samples=4"]
    # val/loss (minimised): it differs between the trials of untrained smoke models, unlike their recall
    run(
        [
            sys.executable,
            "-m",
            "e2e_him.train",
            *search,
            *SMALL,
            "optimized_metric=val/loss",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(trials) == 3
    losses, params = [], []
    for trial in trials:
        losses.append(yaml.safe_load((trial / "metrics.json").read_text())["loss"])
        overrides = yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text())
        params.append(dict(o.split("=", 1) for o in overrides if o.startswith("model.")))
    assert len({p["model.optimizer.lr"] for p in params}) == 3  # three different trials
    best = int(np.argmin(losses))
    assert results["best_value"] == pytest.approx(losses[best], rel=1e-6)
    assert results["best_params"]["model.optimizer.lr"] == pytest.approx(
        float(params[best]["model.optimizer.lr"])
    )
    assert all(3e-4 <= float(p["model.optimizer.lr"]) <= 3e-3 for p in params)


# ------------------------------------------------------------------------------------------- configs
def compose_with_hydra(overrides: list[str], tmp_path: Path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", [*overrides, f"paths.output_dir={tmp_path}"], return_hydra_config=True)


def test_slurm_launcher_asks_for_one_task_per_device(tmp_path: Path):
    cfg = compose_with_hydra(["experiment=paper_r50", "hydra/launcher=slurm"], tmp_path)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == launcher.tasks_per_node == cfg.trainer.devices == 4
    assert launcher.timeout_min > 0 and "partition" in launcher
    local = compose_with_hydra(["hydra/launcher=local"], tmp_path).hydra.launcher
    assert local._target_.endswith("LocalLauncher") and local.tasks_per_node == 1


def test_optuna_config_follows_the_monitored_metric(tmp_path: Path):
    cfg = compose_with_hydra(["hparams_search=quickstart_optuna"], tmp_path)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.mode.name == "MULTIRUN"
    assert (cfg.optimized_metric, cfg.hydra.sweeper.direction) == ("val/REC_0.5", "maximize")
    low = compose_with_hydra(["hparams_search=paper_optuna", "optimized_metric=val/loss"], tmp_path)
    assert low.hydra.sweeper.direction == "minimize" and "model.backbone_lr_mult" in low.hydra.sweeper.params
    with pytest.raises(ValueError, match="max or min"):
        optuna_direction("up")


def test_lightning_ddp_launch_refused_inside_a_sweep():
    ddp = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False)
    with pytest.raises(ConfigError, match="hydra/launcher=slurm"):
        check_launcher(ddp, multirun=True)
    check_launcher(ddp, multirun=False)  # a single run: Lightning starts its processes itself
    check_launcher(L.Trainer(accelerator="cpu", devices=1, logger=False), multirun=True)


def test_every_rank_of_a_run_gets_the_same_dir_and_its_own_log():
    stamp = "2026-01-01_00-00-00-000000"
    assert run_stamp(stamp, {}) == stamp
    assert (
        run_stamp(stamp, {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}) == stamp
    )  # Lightning's launcher: it passes
    torchrun = {"WORLD_SIZE": "2", "RANK": "1", "TORCHELASTIC_RUN_ID": "abc"}
    assert run_stamp(stamp, torchrun) == "torchrun-abc"
    with pytest.raises(ValueError, match="rdzv-id"):
        run_stamp(stamp, {**torchrun, "TORCHELASTIC_RUN_ID": "none"})
    assert run_stamp(stamp, {"SLURM_NTASKS": "4", "SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0"}) == "slurm-77.0"
    assert run_stamp(stamp, {"SLURM_NTASKS": "1", "SLURM_JOB_ID": "77"}) == stamp
    assert [rank_suffix(e) for e in ({}, {"RANK": "0"}, {"RANK": "3"}, {"SLURM_PROCID": "2"})] == [
        "",
        "",
        "_rank3",
        "_rank2",
    ]
    assert rank_suffix({"LOCAL_RANK": "1"}) == "_rank1" and rank_suffix(
        {"LOCAL_RANK": "1", "NODE_RANK": "2"}
    ) == ("_node2_rank1")
