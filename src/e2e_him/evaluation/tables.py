"""The paper's ablation tables (VII: guidance, queries, fusion, refiner; VIII: backbones) built from run dirs.

A run dir is one written by `e2e_him.train`: `metrics.json` (flat final metrics) and `.hydra/config.yaml` (the
resolved config, written by Hydra). `collect_runs` finds them under a multirun dir; `build_table` lays them
out like the paper's table, with the paper's own numbers in a second block of columns.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from e2e_him.models.stored_configs import upgrade_model_config

# Table VII (HIM-100K validation, ResNet-50): EMSE, EMAD, REC, ACC at IoU 0.75.
PAPER_TABLE7: dict[str, dict[str, float]] = {
    "var1": {"EMSE_0.75": 0.00663, "EMAD_0.75": 0.00799, "REC_0.75": 0.92428, "ACC_0.75": 0.90323},
    "var2": {"EMSE_0.75": 0.00592, "EMAD_0.75": 0.00732, "REC_0.75": 0.95466, "ACC_0.75": 0.92735},
    "var3": {"EMSE_0.75": 0.00642, "EMAD_0.75": 0.00779, "REC_0.75": 0.93843, "ACC_0.75": 0.91580},
    "var4": {"EMSE_0.75": 0.00562, "EMAD_0.75": 0.00691, "REC_0.75": 0.95559, "ACC_0.75": 0.94065},
    "var5": {"EMSE_0.75": 0.00629, "EMAD_0.75": 0.00765, "REC_0.75": 0.93228, "ACC_0.75": 0.91333},
    "var6": {"EMSE_0.75": 0.00787, "EMAD_0.75": 0.00944, "REC_0.75": 0.90074, "ACC_0.75": 0.88123},
    "paper_r50": {"EMSE_0.75": 0.00602, "EMAD_0.75": 0.00737, "REC_0.75": 0.94863, "ACC_0.75": 0.92955},
}
TABLE7_NAMES = {**{f"var{i}": f"E2E-HIM-Var{i}" for i in range(1, 7)}, "paper_r50": "E2E-HIM"}
TABLE7_METRICS = ["EMSE_0.75", "EMAD_0.75", "REC_0.75", "ACC_0.75"]


def _row8(values: list[float]) -> dict[str, float]:
    return dict(zip(TABLE8_METRICS, values))


# Table VIII (HIM-100K validation, 20 queries): metrics at IoU 0.5 and 0.75.
TABLE8_METRICS = [f"{m}_{t}" for t in ("0.5", "0.75") for m in ("EMSE", "EMAD", "REC", "ACC")]
PAPER_TABLE8: dict[str, dict[str, float]] = {
    "paper_r50": _row8([0.00758, 0.00895, 0.98562, 0.96580, 0.00602, 0.00737, 0.94863, 0.92955]),
    "backbone_swin_base": _row8([0.00601, 0.00731, 0.99061, 0.97234, 0.00503, 0.00632, 0.96846, 0.95060]),
    "backbone_swin_tiny": _row8([0.00648, 0.00779, 0.98864, 0.96964, 0.00535, 0.00665, 0.96185, 0.94336]),
    "backbone_vitaev2_s": _row8([0.00619, 0.00747, 0.98875, 0.98000, 0.00504, 0.00631, 0.96451, 0.95598]),
}
TABLE8_NAMES = {
    "paper_r50": "ResNet-50",
    "backbone_swin_base": "Swin-Base",
    "backbone_swin_tiny": "Swin-Tiny",
    "backbone_vitaev2_s": "ViTAEv2-S",
}


@dataclass
class Run:
    """One run dir: its experiment, the model switches that the tables show, and its final metrics."""

    path: Path
    experiment: str
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] | None = None  # None: the run wrote no metrics.json (failed or unfinished)


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """The switches of a run's model config, of this version or an earlier one (`upgrade_model_config`)."""
    net = upgrade_model_config(config.get("model") or {}).get("net") or {}
    backbone = net.get("backbone") or {}

    def node(name: str) -> dict[str, Any]:
        return net.get(name) or {}

    return {
        "heads": node("guidance").get("num_heads"),
        "queries": node("perception").get("num_queries"),
        "fusion": node("matting").get("use_fusion"),
        "refiner": node("matting").get("use_refiner"),
        "backbone": backbone.get("name") or str(backbone.get("_target_", "?")).rsplit(".", 1)[-1],
    }


def read_run(path: Path) -> Run:
    """The run in `path` (a dir with `.hydra/config.yaml`); `metrics` is None when it has no metrics.json."""
    cfg_file = path / ".hydra" / "config.yaml"
    config = OmegaConf.to_container(OmegaConf.load(cfg_file), resolve=False) if cfg_file.is_file() else {}
    metrics_file = path / "metrics.json"
    metrics = None
    if metrics_file.is_file():
        try:
            # a diverged run writes NaN as null: keep it as NaN rather than failing the whole table
            values = json.loads(metrics_file.read_text()).items()
            metrics = {k: float("nan") if v is None else float(v) for k, v in values}
        except (ValueError, TypeError, AttributeError) as err:
            raise ValueError(f"{metrics_file}: not a JSON object of numbers ({err})") from err
    experiment = str(config.get("experiment_name") or path.name)
    return Run(path=path, experiment=experiment, settings=_settings(config), metrics=metrics)


def collect_runs(root: str | Path) -> list[Run]:
    """Every run under `root` (dirs holding `.hydra/config.yaml` or `metrics.json`), in path order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    dirs = {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    dirs |= {p.parent for p in root.rglob("metrics.json")}
    if not dirs:
        raise FileNotFoundError(f"{root}: no run found (no .hydra/config.yaml or metrics.json below it)")
    return [read_run(d) for d in sorted(dirs)]


def detect_table(runs: list[Run]) -> str:
    """ "7" when the runs include a Table VII variant, "8" when they include a backbone run."""
    names = {r.experiment for r in runs}
    if names & {f"var{i}" for i in range(1, 7)}:
        return "7"
    if names & {n for n in TABLE8_NAMES if n != "paper_r50"}:
        return "8"
    raise ValueError(
        f"cannot tell the table from the experiments {sorted(names)}: give --table 7 or --table 8"
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "✓" if value else "×"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.5f}"
    return str(value)


def build_table(runs: list[Run], table: str) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of Table `table` ("7" or "8"): our settings and metrics, then the paper's metrics.

    Rows follow the paper's order; runs of other experiments are appended with an empty paper block, and runs
    without metrics are kept with "missing" so that a failed run is visible, not silently dropped.
    """
    if table == "7":
        paper, names, metrics = PAPER_TABLE7, TABLE7_NAMES, TABLE7_METRICS
        keys = ["heads", "queries", "fusion", "refiner"]
        head = ["Method", "Experiment", "Head Number", "Query Number", "Fusion", "Refiner"]
    elif table == "8":
        paper, names, metrics = PAPER_TABLE8, TABLE8_NAMES, TABLE8_METRICS
        keys = ["backbone"]
        head = ["Backbone", "Experiment", "timm / module"]
    else:
        raise ValueError(f"table={table!r}: choose 7 or 8")
    header = [*head, *metrics, "status", *(f"paper {m}" for m in metrics)]
    order = {name: i for i, name in enumerate(names)}
    runs = sorted(runs, key=lambda r: (order.get(r.experiment, len(order)), str(r.path)))
    rows = []
    for run in runs:
        ours = [run.metrics.get(m) if run.metrics else None for m in metrics]
        status = "ok" if run.metrics else f"missing metrics.json in {run.path}"
        theirs = [paper.get(run.experiment, {}).get(m) for m in metrics]
        label = names.get(run.experiment, run.experiment)
        rows.append([label, run.experiment, *(run.settings.get(k) for k in keys), *ours, status, *theirs])
    return header, rows


def write_table(
    header: list[str], rows: list[list[Any]], out_stem: str | Path, title: str
) -> dict[str, Path]:
    """`<out_stem>.md` (a markdown table with a title) and `<out_stem>.csv`; returns both paths."""
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    md_path, csv_path = out_stem.with_suffix(".md"), out_stem.with_suffix(".csv")
    md_path.write_text("\n".join(md) + "\n")
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    return {"markdown": md_path, "csv": csv_path}
