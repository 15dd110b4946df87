"""OmegaConf resolvers used by conf/: registered when `e2e_him` is imported (entry points and tests do)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf

from e2e_him.utils.hardware import training_precision


def find_conf(
    source: Path | None = None, packaged: Path | None = None, cwd: Path | None = None
) -> tuple[Path, Path]:
    """(the root that `paths.root_dir` means: outputs/ and data/ go under it, the folder of the configs).

    A source checkout (`pip install -e .`, as `make setup` does, or `PYTHONPATH=src`): the checkout and its
    `conf/`. An installed wheel, which carries `conf/` inside the package (`e2e_him/conf`, pyproject.toml):
    the working directory and those configs. When neither has `train.yaml`, the source folder: Hydra's error
    then names the folder it did not find.
    """
    here = Path(__file__).resolve()
    source = here.parents[3] if source is None else source  # <checkout>/src/e2e_him/utils/resolvers.py
    packaged = here.parents[1] / "conf" if packaged is None else packaged  # <site-packages>/e2e_him/conf
    if (source / "conf" / "train.yaml").is_file():
        return source, source / "conf"
    if (packaged / "train.yaml").is_file():
        return (Path.cwd() if cwd is None else cwd), packaged
    return source, source / "conf"


REPO_ROOT, CONF_DIR = find_conf()


def _first_set(*values):
    """The first argument that is not null (`${e2e_him_or:${run_dir},default}`)."""
    for value in values:
        if value is not None and value != "":
            return value
    return None


# The validation metric that best sums up each metric family, and whether higher is better.
MONITORS = {"imq": ("val/IMQ_mse", "max"), "instance": ("val/REC_0.5", "max"), "human": ("val/MSE", "min")}


def monitor_for(kinds, prefer: str | None = None) -> str:
    """`${e2e_him_monitor:${model.metrics}}`: the metric that picks the best checkpoint for these kinds;
    `${e2e_him_monitor:${model.metrics},instance}` prefers a kind when the metrics include it."""
    for kind in ([prefer] if prefer else []) + ["imq", "instance", "human"]:
        if kind in list(kinds):
            return MONITORS[kind][0]
    raise ValueError(f"no metric to monitor among {list(kinds)}; choose from {list(MONITORS)}")


def mode_for(metric: str) -> str:
    """`${e2e_him_mode:${optimized_metric}}`: max for recognition / IMQ metrics, min for errors."""
    for name, mode in MONITORS.values():
        if metric == name:
            return mode
    return (
        "min"
        if metric.split("/")[-1].split("_")[0]
        in ("SAD", "MSE", "MAD", "Grad", "Conn", "EMSE", "EMAD", "loss")
        else "max"
    )


def run_stamp(stamp: str, env: Mapping[str, str] | None = None) -> str:
    """`${e2e_him_run_stamp:${now:...}}`: the last part of a run dir's name, the same in all of a run's ranks.

    A launcher that starts one Hydra app per process (torchrun, or `srun` with several tasks) would give each
    rank its own time stamp and so its own run dir; there the run's id names the dir instead:
    `torchrun-<TORCHELASTIC_RUN_ID>` or `slurm-<job id>.<step id>`. Otherwise (one process, or Lightning's
    own DDP launcher, which hands its run dir to the processes it starts) the given time stamp.
    """
    env = os.environ if env is None else env
    if int(env.get("WORLD_SIZE", "1") or 1) > 1 and "TORCHELASTIC_RUN_ID" in env:
        run_id = env["TORCHELASTIC_RUN_ID"]
        if run_id in ("", "none"):
            raise ValueError(
                "torchrun without a run id: every rank would pick its own run dir. Give torchrun "
                "--rdzv-id=<job id> (or --standalone on one machine), or give run_dir=<shared folder>"
            )
        return f"torchrun-{run_id}"
    if int(env.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in env:
        return f"slurm-{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', '0')}"
    return stamp


def rank_suffix(env: Mapping[str, str] | None = None) -> str:
    """`${e2e_him_rank_suffix:}`: "" in the process of global rank 0 (and when not distributed), else
    `_rank<R>`, so that each process of a DDP run logs to its own file and rank 0's is the run's log.

    The rank comes from what the launchers set before the process starts: torchrun's RANK, SLURM's
    SLURM_PROCID, or the NODE_RANK / LOCAL_RANK that Lightning's DDP launcher gives the processes it starts.
    """
    env = os.environ if env is None else env
    for key in ("RANK", "SLURM_PROCID"):
        if env.get(key, "").isdigit():
            rank = int(env[key])
            return f"_rank{rank}" if rank else ""
    local, node = env.get("LOCAL_RANK", "0"), env.get("NODE_RANK", "0")
    if local.isdigit() and node.isdigit() and (int(local) or int(node)):
        return f"_node{node}_rank{local}" if int(node) else f"_rank{local}"
    return ""


def optuna_direction(mode: str) -> str:
    """`${e2e_him_direction:${optimized_mode}}`: max / min as the Optuna sweeper's maximize / minimize."""
    directions = {"max": "maximize", "min": "minimize"}
    if mode not in directions:
        raise ValueError(f"optimized_mode must be max or min, got {mode!r}")
    return directions[mode]


def register() -> None:
    """Register the resolvers `e2e_him_root`, `e2e_him_or`, `e2e_him_monitor`, `e2e_him_mode`,
    `e2e_him_run_stamp`, `e2e_him_rank_suffix`, `e2e_him_direction` and `e2e_him_cpu_precision` once."""
    if not OmegaConf.has_resolver("e2e_him_root"):
        OmegaConf.register_new_resolver("e2e_him_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("e2e_him_or"):
        OmegaConf.register_new_resolver("e2e_him_or", _first_set)
    if not OmegaConf.has_resolver("e2e_him_monitor"):
        OmegaConf.register_new_resolver("e2e_him_monitor", monitor_for)
    if not OmegaConf.has_resolver("e2e_him_mode"):
        OmegaConf.register_new_resolver("e2e_him_mode", mode_for)
    if not OmegaConf.has_resolver("e2e_him_run_stamp"):  # cached: a run dir is decided once
        OmegaConf.register_new_resolver("e2e_him_run_stamp", run_stamp, use_cache=True)
    if not OmegaConf.has_resolver("e2e_him_rank_suffix"):
        OmegaConf.register_new_resolver("e2e_him_rank_suffix", rank_suffix, use_cache=True)
    if not OmegaConf.has_resolver("e2e_him_direction"):
        OmegaConf.register_new_resolver("e2e_him_direction", optuna_direction)
    if not OmegaConf.has_resolver("e2e_him_cpu_precision"):  # cached: one answer per process
        OmegaConf.register_new_resolver("e2e_him_cpu_precision", training_precision, use_cache=True)
