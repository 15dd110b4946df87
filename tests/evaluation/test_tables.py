"""Tables VII / VIII from run dirs: layout, the paper's numbers, missing runs kept visible."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e2e_him.evaluation.tables import (
    PAPER_TABLE7,
    PAPER_TABLE8,
    build_table,
    collect_runs,
    detect_table,
    write_table,
)

REPO = Path(__file__).resolve().parents[2]


def fake_run(root: Path, name: str, experiment: str, net: dict, metrics: dict | None) -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"experiment_name": experiment, "model": {"net": net}})
    )
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def _net(heads=2, queries=20, fusion=True, refiner=True, backbone="resnet50"):
    return {
        "_target_": "e2e_him.models.e2e_him.E2EHIM.from_config",
        "backbone": {"name": backbone},
        "perception": {"num_queries": queries},
        "guidance": {"num_heads": heads},
        "matting": {"use_fusion": fusion, "use_refiner": refiner},
    }


def _earlier_net(heads=2, queries=20, fusion=True, refiner=True, backbone="resnet50"):
    """A run dir's network config as versions before issue 23 wrote it: one flat argument list."""
    return {
        "_target_": "e2e_him.models.e2e_him.E2EHIM",
        "guidance_heads": heads,
        "num_queries": queries,
        "use_fusion": fusion,
        "use_refiner": refiner,
        "backbone": {"name": backbone},
    }


def _metrics(v: float) -> dict:
    return {f"{m}_{t}": v for m in ("EMSE", "EMAD", "REC", "ACC") for t in ("0.5", "0.75")}


@pytest.mark.parametrize("net", [_net, _earlier_net])  # run dirs of this version and of earlier ones
def test_table7_layout_order_and_paper_columns(tmp_path: Path, net):
    fake_run(tmp_path, "0_paper_r50", "paper_r50", net(), _metrics(0.9))
    fake_run(tmp_path, "1_var4", "var4", net(queries=50), _metrics(0.8))
    fake_run(tmp_path, "2_var1", "var1", net(heads=0, fusion=False), _metrics(0.7))
    fake_run(tmp_path, "3_var6", "var6", net(refiner=False), None)  # failed run
    runs = collect_runs(tmp_path)
    assert detect_table(runs) == "7"
    header, rows = build_table(runs, "7")
    assert header[:6] == ["Method", "Experiment", "Head Number", "Query Number", "Fusion", "Refiner"]
    assert header[6:10] == ["EMSE_0.75", "EMAD_0.75", "REC_0.75", "ACC_0.75"]
    assert [r[0] for r in rows] == [
        "E2E-HIM-Var1",
        "E2E-HIM-Var4",
        "E2E-HIM-Var6",
        "E2E-HIM",
    ]  # the paper's order
    var1 = rows[0]
    assert var1[2:6] == [0, 20, False, True]
    assert var1[6] == pytest.approx(0.7)
    assert var1[-4:] == [PAPER_TABLE7["var1"][m] for m in header[6:10]]
    assert rows[2][6] is None and rows[2][10].startswith("missing metrics.json")

    files = write_table(header, rows, tmp_path / "out" / "table7", "Table VII")
    md = files["markdown"].read_text()
    assert "| E2E-HIM-Var1 | var1 | 0 | 20 | × | ✓ | 0.70000" in md
    assert "0.00663" in md  # the paper's Var1 EMSE
    with files["csv"].open() as f:
        table = list(csv.reader(f))
    assert table[0] == header and len(table) == 5


def test_table8_and_the_cli(tmp_path: Path):
    fake_run(tmp_path, "0_paper_r50", "paper_r50", _net(), _metrics(0.5))
    fake_run(
        tmp_path, "1_backbone_swin_tiny", "backbone_swin_tiny", _net(backbone="swin_tiny"), _metrics(0.6)
    )
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "collect_table.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Table VIII" in proc.stdout
    md = (tmp_path / "table8.md").read_text()
    assert "| ResNet-50 | paper_r50 | resnet50 |" in md and "| Swin-Tiny |" in md
    assert f"{PAPER_TABLE8['backbone_swin_tiny']['REC_0.5']:.5f}" in md


def test_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no run found"):
        collect_runs(tmp_path)
    fake_run(tmp_path, "x", "quickstart", _net(), _metrics(0.1))
    with pytest.raises(ValueError, match="--table"):
        detect_table(collect_runs(tmp_path))
    (tmp_path / "x" / "metrics.json").write_text('{"REC_0.75": null, "ACC_0.75": 0.5}')  # a diverged run
    run = collect_runs(tmp_path)[0]
    assert run.metrics["REC_0.75"] != run.metrics["REC_0.75"] and run.metrics["ACC_0.75"] == 0.5  # NaN kept
    (tmp_path / "x" / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"metrics\.json"):
        collect_runs(tmp_path)
