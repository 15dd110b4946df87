"""`trainer=gpu` and `trainer=ddp`: cuDNN's autotuner, TF32 float32 products, and a rolling checkpoint written
by time (asked about every few steps) instead of every 200 steps."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from e2e_him.callbacks import TimedCheckpoint
from e2e_him.utils.config import compose_config
from e2e_him.utils.devices import gpu_trainer
from e2e_him.utils.instantiate import build, build_dict


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_gpu_trainers_tune_cudnn_use_tf32_and_checkpoint_by_time(trainer: str, tmp_path: Path):
    cfg = compose_config("train", ["experiment=paper_r50", f"trainer={trainer}"], output_dir=tmp_path)
    assert cfg.trainer.benchmark is True and cfg.trainer.tf32 is True
    assert cfg.trainer._target_ == "e2e_him.utils.devices.gpu_trainer"
    step = cfg.callbacks.step_checkpoint
    assert step._target_ == "e2e_him.callbacks.TimedCheckpoint" and step.every_n_train_steps is None
    assert step.train_time_interval.minutes == 30
    callbacks = build_dict(cfg.callbacks, "callbacks")
    timed = [c for c in callbacks if isinstance(c, TimedCheckpoint)]
    assert len(timed) == 1 and timed[0]._train_time_interval == timedelta(minutes=30)
    # a CPU try of the same config builds (without touching CUDA's settings)
    overrides = ["experiment=paper_r50", f"trainer={trainer}", "trainer.accelerator=cpu", "trainer.devices=1"]
    overrides += ["trainer.strategy=auto"] if trainer == "ddp" else []
    cpu = compose_config("train", overrides, output_dir=tmp_path)
    assert isinstance(build(cpu.trainer, "trainer", callbacks=callbacks, logger=False), L.Trainer)


def test_cpu_runs_keep_the_step_checkpoint(tmp_path: Path):
    cfg = compose_config("train", ["experiment=quickstart"], output_dir=tmp_path)
    assert cfg.callbacks.step_checkpoint.every_n_train_steps == 200 and "benchmark" not in cfg.trainer
    gpu = compose_config("train", ["experiment=paper_r50", "trainer=gpu", "callbacks=default"], tmp_path)
    assert gpu.callbacks.step_checkpoint.every_n_train_steps == 200  # the command line still chooses


def test_gpu_trainer_sets_tf32_for_cuda_only(monkeypatch):
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        gpu_trainer(tf32=False, accelerator="cpu", devices=1, logger=False)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
        monkeypatch.setattr(L, "Trainer", lambda **kw: kw)  # no GPU here: stop before Lightning looks
        assert gpu_trainer(tf32=True, accelerator="gpu", devices=1) == {"accelerator": "gpu", "devices": 1}
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        gpu_trainer(tf32=False, accelerator="gpu")
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_timed_checkpoint_looks_at_the_clock_every_n_steps(tmp_path: Path):
    saved = []

    class Counting(TimedCheckpoint):
        def _save_checkpoint(self, trainer, filepath):
            saved.append(trainer.global_step)
            super()._save_checkpoint(trainer, filepath)

    # an interval of 0: every look at the clock finds it due; the looks come every 3 steps
    ckpt = Counting(timedelta(0), check_every_n_steps=3, dirpath=tmp_path, filename="last", save_top_k=1)
    trainer = L.Trainer(max_steps=7, callbacks=[ckpt], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, accelerator="cpu")  # fmt: skip
    trainer.fit(BoringModel())
    assert saved[:2] == [3, 6] and set(saved) <= {3, 6, 7}  # 7: Lightning's end-of-training save
    with pytest.raises(ValueError, match="check_every_n_steps"):
        TimedCheckpoint(timedelta(minutes=1), check_every_n_steps=0)


GPU_CHECK = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.sh"


def test_gpu_check_parses_and_stops_with_a_reason_without_a_gpu(tmp_path: Path):
    """scripts/gpu_check.sh is bash that parses; on a machine without CUDA it stops at once (exit 2) and says
    what to do, instead of timing the CPU as if it were the GPU."""
    import os
    import subprocess
    import sys

    assert subprocess.run(["bash", "-n", str(GPU_CHECK)], capture_output=True).returncode == 0
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: gpu_check.sh would run its measurements")
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out")}
    proc = subprocess.run(["bash", str(GPU_CHECK)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no CUDA GPU visible" in proc.stderr and "--cpu" in proc.stderr
    assert not (tmp_path / "out" / "paper_eager.log").exists()  # nothing was timed
