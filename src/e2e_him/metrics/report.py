"""Writing a scored run: metrics.json (flat floats), metrics.md (tables like the paper's), per_image.csv.

metrics.md holds up to three tables: the instance metrics in the column order of the paper's Table I
(EMSE_0.5 EMAD_0.5 REC_0.5 ACC_0.5 EMSE_0.75 ...), IMQ with one row per IoU threshold (IMQ, RQ and MQ for
MAD, MSE, Grad, Conn), and the human matting errors (SAD MAD MSE, as in Tables IV-VI, then Grad Conn). Keys
that fit none of them are listed in a last table, so nothing passed in is dropped.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from e2e_him.metrics.imq import ERROR_NAMES

_INSTANCE_KEY = re.compile(r"^(EMSE|EMAD|REC|ACC)_(\d*\.?\d+)$")
_IMQ_KEY = re.compile(r"^(IMQ_[a-z]+|MQ_[a-z]+|RQ)(?:_(\d*\.?\d+))?$")
HUMAN_COLUMNS = ("SAD", "MAD", "MSE", "Grad", "Conn")
IMQ_COLUMNS = (*tuple(f"IMQ_{e}" for e in ERROR_NAMES), "RQ", *tuple(f"MQ_{e}" for e in ERROR_NAMES))


def _fmt(value) -> str:
    """Four decimals like the paper's tables; None as "-", non-finite values as text."""
    if value is None:
        return "-"
    v = float(value)
    return f"{v:.4f}" if math.isfinite(v) else str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def markdown_tables(metrics: Mapping[str, float]) -> list[str]:
    """The markdown lines of the metric tables (see the module doc)."""
    used: set[str] = set()
    lines: list[str] = []

    # Table I layout: for each threshold (ascending) EMSE EMAD REC ACC
    ths = sorted({m.group(2) for k in metrics if (m := _INSTANCE_KEY.match(k))}, key=float)
    if ths:
        cols = [f"{n}_{t}" for t in ths for n in ("EMSE", "EMAD", "REC", "ACC")]
        lines += ["## Human instance matting (Eq. 20)", ""]
        lines += [*_table(cols, [[_fmt(metrics.get(c)) for c in cols]]), ""]
        used.update(c for c in cols if c in metrics)

    # IMQ: one row per threshold; 0.5 has no suffix
    imq_ths = sorted({(m.group(2) or "0.5") for k in metrics if (m := _IMQ_KEY.match(k))}, key=float)
    if imq_ths:
        rows = []
        for t in imq_ths:
            suffix = "" if t == "0.5" else f"_{t}"
            rows.append([t] + [_fmt(metrics.get(c + suffix)) for c in IMQ_COLUMNS])
            used.update(c + suffix for c in IMQ_COLUMNS if c + suffix in metrics)
        lines += ["## Instance matting quality (InstMatt's IMQ)", ""]
        lines += [*_table(["IoU TH", *IMQ_COLUMNS], rows), ""]

    human = [c for c in HUMAN_COLUMNS if c in metrics]
    if human:
        lines += ["## Human matting (whole image)", ""]
        lines += [*_table(human, [[_fmt(metrics[c]) for c in human]]), ""]
        used.update(human)

    rest = [k for k in metrics if k not in used]
    if rest:
        lines += ["## Other", "", *_table(["key", "value"], [[k, _fmt(metrics[k])] for k in rest]), ""]
    return lines


def _json_value(value) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None  # JSON has no NaN / Infinity


def write_report(
    run_dir: Path, metrics: Mapping[str, float], rows: Sequence[Mapping], title: str
) -> dict[str, Path]:
    """Write metrics.json, metrics.md and per_image.csv into `run_dir` (created if needed).

    Args:
        run_dir: output folder.
        metrics: flat metric dict (floats or 0-d tensors).
        rows: per-image dicts (e.g. from `score_prediction_dir`); columns are the union of their keys in order
            of first appearance; None is written as an empty cell.
        title: heading of metrics.md (e.g. the checkpoint or prediction folder and the data set).

    Returns:
        {"json": path, "markdown": path, "csv": path}.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": run_dir / "metrics.json",
        "markdown": run_dir / "metrics.md",
        "csv": run_dir / "per_image.csv",
    }

    flat = {str(k): _json_value(v) for k, v in metrics.items()}
    paths["json"].write_text(json.dumps(flat, indent=2, allow_nan=False) + "\n")

    md = [f"# {title}", "", f"{len(rows)} images scored.", "", *markdown_tables(metrics)]
    paths["markdown"].write_text("\n".join(md).rstrip() + "\n")

    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return paths
