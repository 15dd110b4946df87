"""Writing a scored run: metrics.json (flat floats), metrics.md (tables laid out like the papers'), CSVs.

metrics.md holds, for the metric families present: the instance metrics in the column order of E2E-HIM's
Table I (EMSE_0.5 EMAD_0.5 REC_0.5 ACC_0.5 EMSE_0.75 ...), one row per subset (all images, then each split);
IMQ with one row per subset and IoU threshold; MaGGIe's per-person errors at MaGGIe's scale in the layout of
its Table 5 (images: MAD MSE Grad Conn MADf MADu per split) or Table 7 (videos: MAD Grad Conn dtSSD MESSDdt
per split), then the same at the usual scale and the remaining per-person keys; the whole-image errors;
and any other key, so nothing passed in is dropped. With mask sets, a value is "mean (std)" over the sets.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from e2e_him.evaluation.folders import Problem
from e2e_him.metrics.imq import ERROR_NAMES
from e2e_him.metrics.maggie import MAGGIE_KEYS, USUAL_KEYS

_INSTANCE_KEY = re.compile(r"^(EMSE|EMAD|REC|ACC)_(\d*\.?\d+)$")
_IMQ_KEY = re.compile(r"^(IMQ_[a-z]+|MQ_[a-z]+|RQ)(?:_(\d*\.?\d+))?$")
HUMAN_COLUMNS = ("SAD", "MAD", "MSE", "Grad", "Conn")
IMQ_COLUMNS = (*tuple(f"IMQ_{e}" for e in ERROR_NAMES), "RQ", *tuple(f"MQ_{e}" for e in ERROR_NAMES))
TABLE5 = ("MAD", "MSE", "Grad", "Conn", "MADf", "MADu")  # MaGGIe's Table 5 columns per split
TABLE7 = ("MAD", "Grad", "Conn", "dtSSD", "MESSDdt")  # MaGGIe's Table 7 columns per split
TEMPORAL_USUAL = {"dtSSD": "dtSSD_x1e2", "MESSDdt": "MESSDdt_x1e3"}
PROBLEM_COLUMNS = ("path", "reason", "action")


def _fmt(value, digits: int = 4) -> str:
    """Fixed decimals; None as "-", non-finite values as text."""
    if value is None:
        return "-"
    v = float(value)
    return f"{v:.{digits}f}" if math.isfinite(v) else str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


class _Cells:
    """Reads "<group>/<key>" values (with "_std" when mask sets were averaged) and remembers what it used."""

    def __init__(self, metrics: Mapping[str, float], digits: int):
        self.metrics, self.digits, self.used = metrics, digits, set()

    def key(self, group: str, key: str) -> str:
        return f"{group}/{key}" if group else key

    def has(self, group: str, key: str) -> bool:
        return self.key(group, key) in self.metrics

    def get(self, group: str, key: str, digits: int | None = None) -> str:
        k = self.key(group, key)
        if k not in self.metrics:
            return "-"
        self.used.update({k, f"{k}_std"})
        d = self.digits if digits is None else digits
        text = _fmt(self.metrics[k], d)
        if f"{k}_std" in self.metrics:
            text += f" ({_fmt(self.metrics[f'{k}_std'], d)})"
        return text


def _groups(metrics: Mapping[str, float], groups: Sequence[str] | None, skip: Sequence[str]) -> list[str]:
    if groups is None:
        prefixes = {k.split("/", 1)[0] for k in metrics if k.count("/") == 1}
        groups = sorted(p for p in prefixes if p not in skip)
    return ["", *groups]


def _label(group: str) -> str:
    return group or "all"


def markdown_tables(
    metrics: Mapping[str, float], groups: Sequence[str] | None = None, mask_sets: Sequence[str] = ()
) -> list[str]:
    """The markdown lines of the metric tables (see the module doc)."""
    groups = _groups(metrics, groups, mask_sets)
    cells = _Cells(metrics, 4)
    lines: list[str] = []
    plain = [k for k in metrics if "/" not in k and not k.endswith("_std")]

    ths = sorted({m.group(2) for k in plain if (m := _INSTANCE_KEY.match(k))}, key=float)
    if ths:
        cols = [f"{n}_{t}" for t in ths for n in ("EMSE", "EMAD", "REC", "ACC")]
        rows = [[_label(g)] + [cells.get(g, c) for c in cols] for g in groups if cells.has(g, cols[0])]
        lines += ["## Human instance matting (E2E-HIM Eq. 20, Table I layout)", ""]
        lines += [*_table(["subset", *cols], rows), ""]

    imq_ths = sorted({(m.group(2) or "0.5") for k in plain if (m := _IMQ_KEY.match(k))}, key=float)
    if imq_ths:
        rows = []
        for g in groups:
            for t in imq_ths:
                suffix = "" if t == "0.5" else f"_{t}"
                if cells.has(g, f"RQ{suffix}"):
                    rows.append([_label(g), t] + [cells.get(g, c + suffix) for c in IMQ_COLUMNS])
        lines += ["## Instance matting quality (InstMatt's IMQ)", ""]
        lines += [*_table(["subset", "IoU TH", *IMQ_COLUMNS], rows), ""]

    lines += _maggie_tables(metrics, groups, cells)

    human = [c for c in HUMAN_COLUMNS if c in metrics]
    if human:
        rows = [[_label(g)] + [cells.get(g, c) for c in human] for g in groups if cells.has(g, human[0])]
        lines += ["## Human matting (whole image: summed people against summed ground truth)", ""]
        lines += [*_table(["subset", *human], rows), ""]

    rest = [k for k in plain if k not in cells.used]
    if rest:
        lines += ["## Other", "", *_table(["key", "value"], [[k, cells.get("", k)] for k in rest]), ""]
    return lines


def _maggie_tables(metrics: Mapping[str, float], groups: Sequence[str], cells: _Cells) -> list[str]:
    """MaGGIe's Table 5 (images) or Table 7 (videos) layout at both scales, then its other keys."""
    if "MAD_maggie" not in metrics:
        return []
    video = "dtSSD_maggie" in metrics
    cols = TABLE7 if video else TABLE5
    # MaGGIe's tables: one column group per split (then all images pooled, when there are several)
    sub = [g for g in groups if g and cells.has(g, "MAD_maggie")]
    sub = [*sub, ""] if sub else [""]
    lines = []
    for scale, name in (("maggie", "MaGGIe's scale"), ("usual", "usual scale")):
        keys = [_scaled(c, scale) for c in cols]
        header = [f"{_label(g)}: {c}" for g in sub for c in cols]
        row = [cells.get(g, k, 2) for g in sub for k in keys]
        table = "Table 7" if video else "Table 5"
        what = ", ".join(keys)
        lines += [f"## MaGGIe's per-person errors, {name} ({table} layout: {what})", ""]
        lines += [*_table(header, [row]), ""]
    extra = [k for k in MAGGIE_KEYS if k not in cols]
    keys = [_scaled(k, s) for k in extra for s in ("maggie", "usual")]
    keys = [k for k in keys if k in metrics]
    if keys:
        rows = [[_label(g)] + [cells.get(g, k, 2) for k in keys] for g in groups if cells.has(g, keys[0])]
        lines += ["## MaGGIe's other per-person errors", "", *_table(["subset", *keys], rows), ""]
    return lines


def _scaled(column: str, scale: str) -> str:
    if scale == "maggie":
        return f"{column}_maggie"
    return TEMPORAL_USUAL.get(column) or USUAL_KEYS[column]


def _json_value(value) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None  # JSON has no NaN / Infinity


def write_csv(path: Path, rows: Sequence[Mapping]) -> Path:
    """Rows as CSV: columns are the union of their keys in order of first appearance; None is empty."""
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return Path(path)


def write_problems(path: Path, problems: Sequence[Problem]) -> Path:
    """skipped_files.tsv: one `path<TAB>reason<TAB>action` line per file skipped or changed."""
    with Path(path).open("w") as f:
        f.write("\t".join(PROBLEM_COLUMNS) + "\n")
        for p in problems:
            f.write(
                "\t".join(str(getattr(p, c)).replace("\t", " ").replace("\n", " ") for c in PROBLEM_COLUMNS)
                + "\n"
            )
    return Path(path)


def write_report(
    run_dir: Path,
    metrics: Mapping[str, float],
    rows: Sequence[Mapping],
    title: str,
    problems: Sequence[Problem] | None = None,
    video_rows: Sequence[Mapping] = (),
    groups: Sequence[str] | None = None,
    mask_sets: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write metrics.json, metrics.md, per_image.csv (and per_video.csv, skipped_files.tsv) into `run_dir`.

    Args:
        run_dir: output folder (created if needed).
        metrics: flat metric dict (floats or 0-d tensors); "<group>/<key>" for subsets, "<key>_std" for the
            standard deviation over mask sets.
        rows: per-image dicts (per frame for videos); None is written as an empty cell.
        title: heading of metrics.md (e.g. the checkpoint or prediction folder and the data set).
        problems: files skipped or changed while scoring (to skipped_files.tsv, even when empty, and counted
            in metrics.md); None writes no skipped_files.tsv (a training run's report).
        video_rows: per-video dicts (per_video.csv).
        groups: the subsets (splits) in display order; None infers them from the keys.
        mask_sets: the mask sets averaged over (their per-set keys stay in metrics.json only).
        notes: extra lines under the title (protocol, pairing, ...).

    Returns:
        {"json", "markdown", "csv"[, "video_csv", "problems"]}: the paths written.
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
    scored = sum(1 for r in rows if r.get("scored", True))
    if video_rows:
        videos = sum(1 for r in video_rows if r.get("scored", True))
        count = f"{scored} frames of {videos} video{'s' if videos != 1 else ''} scored."
    elif mask_sets:
        count = f"{scored} images scored, {scored // max(len(mask_sets), 1)} per mask set."
    elif rows:
        count = f"{scored} images scored."
    else:  # a training run's test: no per-image rows; its notes say what was scored
        count = ""
    head = [f"# {title}", "", count] if count else [f"# {title}", ""]
    if mask_sets:
        head.append(
            f"Mask sets ({len(mask_sets)}): {', '.join(mask_sets)}; values are mean (std) over the sets."
        )
    if problems:
        head.append(
            f"{len(problems)} files or folders skipped or changed while scoring: see skipped_files.tsv."
        )
    head += list(notes)
    md = [*head, "", *markdown_tables(metrics, groups, mask_sets)]
    paths["markdown"].write_text("\n".join(md).rstrip() + "\n")
    write_csv(paths["csv"], rows)
    if video_rows:
        paths["video_csv"] = write_csv(run_dir / "per_video.csv", video_rows)
    if problems is not None:
        paths["problems"] = write_problems(run_dir / "skipped_files.tsv", problems)
    return paths
