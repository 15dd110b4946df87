"""Flat keys per split and mask set, and metrics.md laid out like Table I, IMQ, MaGGIe's Tables 5 and 7."""

from __future__ import annotations

import json

from e2e_him.evaluation.folders import Problem
from e2e_him.evaluation.offline import flatten, mean_and_std
from e2e_him.evaluation.report import markdown_tables, write_report


def test_flatten_prefixes_splits_only_when_there_are_several():
    assert flatten({"": {"REC_0.5": 0.5}, "natural": {"REC_0.5": 0.5}}) == {"REC_0.5": 0.5}
    out = flatten({"": {"REC_0.5": 0.5}, "comp": {"REC_0.5": 0.4}, "natural": {"REC_0.5": 0.6}})
    assert out == {"REC_0.5": 0.5, "comp/REC_0.5": 0.4, "natural/REC_0.5": 0.6}


def test_mean_and_std_over_mask_sets():
    out = mean_and_std({"s1": {"MAD_maggie": 10.0, "comp/MAD_maggie": 1.0}, "s2": {"MAD_maggie": 14.0}})
    assert out["MAD_maggie"] == 12.0 and out["MAD_maggie_std"] == 2.0  # numpy's std (ddof 0)
    assert out["comp/MAD_maggie"] == 1.0 and out["comp/MAD_maggie_std"] == 0.0  # only s1 has it
    assert out["s1/MAD_maggie"] == 10.0 and out["s2/MAD_maggie"] == 14.0


def _maggie(prefix: str, value: float, video: bool = False) -> dict[str, float]:
    cols = (
        ["MAD", "Grad", "Conn", "dtSSD", "MESSDdt"]
        if video
        else ["MAD", "MSE", "Grad", "Conn", "MADf", "MADu"]
    )
    usual = {
        "MAD": "MAD_x1e3",
        "MSE": "MSE_x1e3",
        "Grad": "Grad_x1e-3",
        "Conn": "Conn_x1e-3",
        "MADf": "MADf_x1e3",
    }
    usual |= {"MADu": "MADu_x1e3", "dtSSD": "dtSSD_x1e2", "MESSDdt": "MESSDdt_x1e3"}
    out = {f"{prefix}{c}_maggie": value for c in cols}
    out |= {f"{prefix}{usual[c]}": value / 10 for c in cols}
    return out


def test_table5_columns_per_split_with_std():
    metrics = {**_maggie("", 20.0), **_maggie("comp/", 12.93), **_maggie("natural/", 27.17)}
    metrics |= {k + "_std": 0.3 for k in list(metrics)}
    md = "\n".join(markdown_tables(metrics))
    assert "Table 5 layout" in md
    assert (
        "| comp: MAD | comp: MSE | comp: Grad | comp: Conn | comp: MADf | comp: MADu | natural: MAD |" in md
    )
    assert "| 12.93 (0.30) | 12.93 (0.30) |" in md and "27.17 (0.30)" in md and "| 1.29 (0.30) |" in md
    assert "## Other" not in md  # every key shown (the pooled values in the last column group)


def test_table7_for_videos_and_the_report_files(tmp_path):
    metrics = {**_maggie("", 10.12, video=True), "REC_0.5": 0.9, "odd_key": 1.0}
    md = "\n".join(markdown_tables(metrics))
    assert "Table 7 layout" in md and "| all: MAD | all: Grad | all: Conn | all: dtSSD | all: MESSDdt |" in md
    assert "| odd_key | 1.0000 |" in md  # nothing dropped
    rows = [{"name": "v/0", "scored": True, "REC_0.5": 1.0}, {"name": "v/1", "scored": True}]
    problems = [Problem("/x/a.png", "unreadable (truncated)", "skipped")]
    files = write_report(tmp_path, {**metrics, "nan": float("nan")}, rows, "t", problems, [{"name": "v"}])
    assert json.loads(files["json"].read_text())["nan"] is None
    assert files["problems"].read_text().splitlines() == [
        "path\treason\taction",
        "/x/a.png\tunreadable (truncated)\tskipped",
    ]
    text = files["markdown"].read_text()
    assert "2 frames of 1 video scored." in text and "1 files or folders skipped" in text
    assert files["csv"].read_text().splitlines()[0] == "name,scored,REC_0.5"
