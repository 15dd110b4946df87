"""Checks that a training run's devices and process launcher fit this machine and this Hydra mode, made before
anything is built, with messages that say what to add (docs/distributed.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from e2e_him.utils.instantiate import ConfigError

GPU_ACCELERATORS = ("gpu", "cuda")


def requested_devices(devices: Any) -> int | None:
    """How many devices `trainer.devices` asks for (an int, a list of ids, "0,1"); None for "auto" or -1."""
    if isinstance(devices, int):
        return None if devices < 0 else devices
    if isinstance(devices, str):
        text = devices.strip()
        if text in ("auto", "-1", ""):
            return None
        if "," in text:
            return len([d for d in text.split(",") if d.strip()])
        return int(text) if text.isdigit() else None
    return len(list(devices))  # a list of device ids


def check_devices(
    trainer: Mapping[str, Any],
    experiment: str,
    batch_size: int | None = None,
    gpu_count: int | None = None,
) -> None:
    """Stop when the trainer asks for more CUDA GPUs than this machine has (e.g. the paper's `trainer=ddp`,
    four GPUs, on a laptop), instead of Lightning's "No supported gpu backend found!" after the set-up.

    Args:
        trainer: the `trainer` config node (accelerator, devices, strategy).
        experiment: the experiment's name, for the message.
        batch_size: `data.batch_size` (per device), to say which value keeps the total batch.
        gpu_count: the machine's GPU count (None: `torch.cuda.device_count()`).

    Raises:
        ConfigError: naming what to add: `trainer=cpu` (and `debug=smoke`) without GPUs, or
            `trainer.devices=<count>` with fewer GPUs than asked for.
    """
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator not in GPU_ACCELERATORS:
        return
    have = torch.cuda.device_count() if gpu_count is None else gpu_count
    devices = trainer.get("devices", "auto")
    wanted = requested_devices(devices)
    asked = (
        f"experiment={experiment} trains on {wanted or 'all'} GPU(s) (trainer.accelerator={accelerator}, "
        f"trainer.devices={devices}, strategy={trainer.get('strategy', 'auto')})"
    )
    if have == 0:
        raise ConfigError(
            f"{asked}, but this machine has no CUDA GPU. Add `trainer=cpu` to train on the CPU, with "
            "`debug=smoke` for a few steps on small synthetic data; or `trainer.accelerator=cpu "
            "trainer.devices=N` for N CPU processes under DDP (gloo). With GPUs the command runs "
            "as it is (docs/distributed.md)."
        )
    if wanted is not None and wanted > have:
        keep = ""
        if batch_size is not None and (wanted * batch_size) % have == 0:
            keep = (
                f" and data.batch_size={wanted * batch_size // have} to keep the total batch of "
                f"{wanted * batch_size}"
            )
        raise ConfigError(
            f"{asked}, but this machine has {have} GPU(s). Add `trainer.devices={have}`{keep} "
            "(docs/distributed.md says what to change with the GPU count)."
        )


def check_launcher(trainer: Any, multirun: bool) -> None:
    """Refuse a Hydra sweep whose runs would have Lightning start their DDP processes.

    Lightning's DDP launcher starts each extra process by running this command again; within a sweep (`-m`,
    and every submitit job) that command is the sweep, which each process would then run again (the known
    Hydra + DDP trap). Processes that a cluster starts (SLURM tasks, torchrun) are fine.

    Args:
        trainer: the built `lightning.Trainer`.
        multirun: whether this run is one job of a Hydra sweep.
    """
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

    launcher = getattr(trainer.strategy, "launcher", None)
    if not multirun or not isinstance(launcher, _SubprocessScriptLauncher):
        return
    if launcher.cluster_environment.creates_processes_externally or launcher.num_processes <= 1:
        return
    raise ConfigError(
        f"trainer.devices={launcher.num_processes} within a Hydra sweep: Lightning would start the extra DDP "
        "processes by re-running the whole sweep command. Sweep multi-device runs with "
        "`hydra/launcher=slurm` (one SLURM task per device; hydra.launcher.tasks_per_node follows "
        "trainer.devices), or start each run on its own (`python -m e2e_him.train ...` or torchrun); "
        "sweeps of one-device runs work with every launcher (docs/distributed.md)."
    )


def gpu_trainer(tf32: bool = True, **trainer_args: Any):
    """Lightning's `Trainer` (`trainer_args`) after setting whether float32 matrix products and convolutions
    on CUDA GPUs may use TF32 tensor cores (Ampere and later: 10 mantissa bits instead of 23, several times
    faster), for conf/trainer/gpu.yaml and ddp.yaml. PyTorch allows it for cuDNN's convolutions and not for
    matrix products by default; under bf16-mixed it is what autocast leaves in float32. With `accelerator:
    cpu` (a CPU try of these configs) nothing is set.
    """
    import lightning as L

    if str(trainer_args.get("accelerator", "auto")) in (*GPU_ACCELERATORS, "auto"):
        torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
        torch.backends.cudnn.allow_tf32 = bool(tf32)
    return L.Trainer(**trainer_args)
