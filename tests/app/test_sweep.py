"""The Table VII chain at CPU size: a Hydra multirun over the variants -> one run dir each -> the table."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# the variants whose table entries are checked below (every variant trains a step in test_configs.py)
VARIANTS = ["var1", "var4", "var6", "paper_r50"]

pytestmark = pytest.mark.slow


def test_table7_sweep_smoke(tmp_path: Path):
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "e2e_him.train", "-m",
        f"experiment={','.join(VARIANTS)}",
        "debug=smoke",
        "callbacks.epoch_checkpoint=null",  # the best checkpoint is enough: each one is ~200 MB of disk
        "data.train.num_samples=4",
        "picture_images=0",
        f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    # multirun dirs are named after the variant
    runs = {p.name.split("_", 1)[1]: p for p in sweep.iterdir() if p.is_dir()}
    assert sorted(runs) == sorted(VARIANTS)
    # paper setups without ImageNet weights say so at start (utils/fidelity.py)
    assert "departs from the paper" in (runs["var1"] / "train.log").read_text()

    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "collect_table.py"), str(sweep)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "Table VII" in out.stdout and "0 without metrics" in out.stdout
    with (sweep / "table7.csv").open() as f:
        rows = list(csv.DictReader(f))
    by_name = {r["Experiment"]: r for r in rows}
    assert set(by_name) == set(VARIANTS)
    assert (by_name["var1"]["Head Number"], by_name["var1"]["Fusion"]) == ("0", "False")
    assert by_name["var4"]["Query Number"] == "50" and by_name["var6"]["Refiner"] == "False"
    assert all(r["status"] == "ok" and 0.0 <= float(r["REC_0.75"]) <= 1.0 for r in rows)
    assert float(by_name["paper_r50"]["paper REC_0.75"]) == pytest.approx(0.94863)
