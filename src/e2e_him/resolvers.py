"""OmegaConf resolvers used by conf/: registered when `e2e_him` is imported (entry points and tests do)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def find_root(source: Path | None = None, cwd: Path | None = None) -> Path:
    """The repository folder that holds `conf/`: the source checkout this package runs from (`pip install
    -e .`, as `make setup` does), else the working directory (a clone, next to a non-editable install). When
    neither has `conf/train.yaml`, the source folder: Hydra's error then names the folder it did not find."""
    source = Path(__file__).resolve().parents[2] if source is None else source
    cwd = Path.cwd() if cwd is None else cwd
    for candidate in (source, cwd):
        if (candidate / "conf" / "train.yaml").is_file():
            return candidate
    return source


REPO_ROOT = find_root()


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


def register() -> None:
    """Register the resolvers `e2e_him_root`, `e2e_him_or`, `e2e_him_monitor`, `e2e_him_mode` once."""
    if not OmegaConf.has_resolver("e2e_him_root"):
        OmegaConf.register_new_resolver("e2e_him_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("e2e_him_or"):
        OmegaConf.register_new_resolver("e2e_him_or", _first_set)
    if not OmegaConf.has_resolver("e2e_him_monitor"):
        OmegaConf.register_new_resolver("e2e_him_monitor", monitor_for)
    if not OmegaConf.has_resolver("e2e_him_mode"):
        OmegaConf.register_new_resolver("e2e_him_mode", mode_for)
