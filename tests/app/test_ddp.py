"""`trainer=ddp` on CPU (gloo, 2 processes from Lightning's own launcher): one run dir, shards, metrics,
checkpoints, loggers and resuming as a user gets them; the paper's GPU setups on a machine without GPUs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from e2e_him.utils.config import compose_config
from e2e_him.utils.devices import check_devices, requested_devices
from e2e_him.utils.instantiate import ConfigError

APP_DIR = Path(__file__).resolve().parent
# Untrained smoke models keep no person at the paper's thresholds; these keep every query and count loose
# overlaps as true positives, so that the metrics compared below are not all 0.
SCORED = ["model.score_threshold=0.0", "model.min_area=0", "model.iou_thresholds=[0.05,0.5]"]
COMMON = [
    "experiment=quickstart",
    "debug=smoke",
    "trainer.precision=32-true",
    "data.train.num_samples=8",  # 2 processes x batch 2: 2 steps per epoch
    "data.val.num_samples=5",  # odd: the shards differ in length, none is padded
    "data.eval_batch_size=1",
    "picture_images=0",
    "callbacks.val_image_panels.dirpath=null",
    *SCORED,
]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


def run_train(*overrides: str, probe: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # each process one thread: 2 processes on 2 cores
        "PYTHONPATH": os.pathsep.join([str(APP_DIR), os.environ.get("PYTHONPATH", "")]),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "HYDRA_FULL_ERROR": "1",
    }
    extra = []
    if probe:
        extra = ["+callbacks.probe._target_=ddp_probe.ShardProbe", f"+callbacks.probe.dirpath={probe}"]
    cmd = [sys.executable, "-m", "e2e_him.train", *COMMON, *overrides, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def probes(folder: Path) -> dict[int, dict]:
    """rank -> what that process recorded (ddp_probe.ShardProbe)."""
    records = [json.loads(p.read_text()) for p in folder.glob("rank*.json")]
    return {r["rank"]: r for r in records}


def last_row(csv_path: Path, key: str) -> float:
    with csv_path.open() as f:
        values = [row[key] for row in csv.DictReader(f) if row.get(key)]
    return float(values[-1])


@pytest.mark.slow
def test_two_process_cpu_ddp_run_resume_and_single_process_evaluation(tmp_path: Path):
    logs = tmp_path / "logs"
    run_train(*DDP, "logger=default", f"paths.log_dir={logs}", probe="${paths.output_dir}/probe")
    run_dirs = list((logs / "outputs" / "train" / "quickstart").iterdir())
    assert len(run_dirs) == 1, run_dirs  # not one per rank
    run = run_dirs[0]
    assert [p.relative_to(logs) for p in logs.rglob("metrics.json")] == [
        run.relative_to(logs) / "metrics.json"
    ]
    assert (run / "train.log").is_file() and (run / "train_rank1.log").is_file()

    ranks = probes(run / "probe")
    assert sorted(ranks) == [0, 1] and ranks[1]["world_size"] == 2
    # training: disjoint shards that together cover each epoch (8 samples, 2 x 2 x 2)
    shard = [{n for _, _, names in ranks[r]["train"] for n in names} for r in (0, 1)]
    assert not shard[0] & shard[1] and len(shard[0] | shard[1]) == 8
    # evaluation: every val image scored once (no padding duplicate), on one process or the other
    for split in ("val_0", "test"):
        names = ranks[0][split] + ranks[1][split]
        assert len(names) == len(set(names)) == 5 and len(ranks[0][split]) == 3, split
    # checkpoints: written by rank 0 only, each once
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["best-epoch000.ckpt", "last.ckpt"]
    assert ranks[1].get("saved", []) == [] and sorted(Path(p).name for p in ranks[0]["saved"]) == ckpts
    # loggers: one CSV log and one wandb run, from rank 0
    assert len(list(tmp_path.rglob("metrics.csv"))) == 1
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    assert len(list(tmp_path.rglob("offline-run-*"))) == 1

    # one process evaluating the same checkpoint scores the same numbers as the two processes did
    single = tmp_path / "single"
    run_train("train=false", f"ckpt_path={run / 'checkpoints' / 'best-epoch000.ckpt'}", f"run_dir={single}")
    ddp_metrics = json.loads((run / "metrics.json").read_text())
    one_metrics = json.loads((single / "metrics.json").read_text())
    assert set(ddp_metrics) == set(one_metrics)
    # not trivial: an image scored twice or missed changes RQ's counts of predictions and people
    assert 0.0 < one_metrics["RQ_0.05"] < 1.0 and one_metrics["loss_alpha_gu"] > 0.0
    assert ddp_metrics == pytest.approx(one_metrics, rel=1e-6, abs=1e-9)
    # validation (IMQ without Grad and Conn) at the end of the epoch: the weights of that checkpoint
    for key in ("RQ_0.05", "IMQ_mse_0.05", "REC_0.05", "loss", "loss_alpha_gu"):
        assert last_row(run / "csv" / "metrics.csv", f"val/{key}") == pytest.approx(
            one_metrics[key], rel=1e-5
        )

    # resume the 2-process run from its last checkpoint: the global step goes on from 2
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    run_train(*DDP, f"run_dir={run}", "ckpt_path=last", "trainer.max_epochs=2", probe=f"{run}/probe_resume")
    resumed = probes(run / "probe_resume")
    assert [s for _, s, _ in resumed[0]["train"]] == [2, 3] == [s for _, s, _ in resumed[1]["train"]]
    assert {e for e, _, _ in resumed[0]["train"]} == {1}
    shard = [{n for _, _, names in resumed[r]["train"] for n in names} for r in (0, 1)]
    assert not shard[0] & shard[1] and len(shard[0] | shard[1]) == 8


@pytest.mark.slow
def test_torchrun_ranks_share_one_run_dir(tmp_path: Path):
    # torchrun starts both processes, each of which composes the config: they must agree on the run dir
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(APP_DIR), "WANDB_MODE": "offline"}
    cmd = [*torchrun, "-m", "e2e_him.train", *COMMON, *DDP, "logger=csv", f"paths.log_dir={tmp_path}"]
    probe = [
        "+callbacks.probe._target_=ddp_probe.ShardProbe",
        "+callbacks.probe.dirpath=${paths.output_dir}/probe",
    ]
    proc = subprocess.run([*cmd, *probe], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    (run,) = (tmp_path / "outputs" / "train" / "quickstart").iterdir()
    assert run.name.startswith("torchrun-")
    assert len(list(tmp_path.rglob("metrics.json"))) == 1 and (run / "train_rank1.log").is_file()
    ranks = probes(run / "probe")
    assert sorted(ranks) == [0, 1] and ranks[0]["world_size"] == 2
    names = ranks[0]["test"] + ranks[1]["test"]
    assert len(names) == len(set(names)) == 5


# ------------------------------------------------------------------------------------- GPUs asked for
def test_paper_setup_without_gpus_says_what_to_add():
    cfg = compose_config("train", ["experiment=var1"])
    assert (cfg.trainer.accelerator, cfg.trainer.devices) == ("gpu", 4)
    with pytest.raises(ConfigError, match=r"no CUDA GPU.*`trainer=cpu`.*`debug=smoke`") as err:
        check_devices(cfg.trainer, cfg.experiment_name, cfg.data.batch_size, gpu_count=0)
    assert "experiment=var1 trains on 4 GPU(s)" in str(err.value)
    with pytest.raises(ConfigError, match=r"has 2 GPU\(s\)\. Add `trainer.devices=2` and data.batch_size=2"):
        check_devices(cfg.trainer, cfg.experiment_name, cfg.data.batch_size, gpu_count=2)
    check_devices(cfg.trainer, cfg.experiment_name, cfg.data.batch_size, gpu_count=4)  # enough: no error
    cpu = compose_config("train", ["experiment=var1", "trainer=cpu"])
    check_devices(cpu.trainer, "var1", 1, gpu_count=0)
    assert [requested_devices(d) for d in (4, -1, "auto", "0,1", [0, 1, 2], "3")] == [4, None, None, 2, 3, 3]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given on a machine without GPUs")
def test_var1_stops_at_once_on_a_machine_without_gpus(tmp_path: Path):
    start = time.time()
    cmd = [sys.executable, "-m", "e2e_him.train", "experiment=var1", f"paths.log_dir={tmp_path}"]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode != 0
    assert "trainer=cpu" in proc.stderr and "debug=smoke" in proc.stderr, proc.stderr[-3000:]
    assert "No supported gpu backend" not in proc.stderr
    assert not list(tmp_path.rglob("*.ckpt")) and time.time() - start < 120
