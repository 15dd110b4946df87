"""`e2e_him.eval pred_dir=...` on M-HIM2K, V-HIM60 and HIM2K layouts, as a user runs it (subprocess)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from benchmark_trees import box, mhim2k_tree, vhim_tree

from e2e_him.data.io import write_alpha

pytestmark = pytest.mark.slow


def eval_app(*overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "e2e_him.eval", "logger=none", *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check and proc.returncode != 0:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        raise AssertionError(f"eval failed ({proc.returncode}):\n{tail}")
    return proc


def _outputs(run: Path) -> tuple[dict, str, list[dict], list[str]]:
    metrics = json.loads((run / "metrics.json").read_text())
    with (run / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    problems = (run / "skipped_files.tsv").read_text().splitlines()
    assert Image.open(run / "worst_images.jpg").size[0] > 300
    return metrics, (run / "metrics.md").read_text(), rows, problems


def test_mhim2k_mask_sets_mean_and_std(tmp_path: Path):
    root, pred, run = tmp_path / "M-HIM2K", tmp_path / "pred", tmp_path / "run"
    mhim2k_tree(root, pred)
    proc = eval_app("data=mhim2k", f"data.root={root}", f"pred_dir={pred}", f"run_dir={run}", "workers=2")
    metrics, md, rows, problems = _outputs(run)
    assert metrics["REC_0.5"] == pytest.approx(2 / 3) and metrics["REC_0.5_std"] == pytest.approx(1 / 3)
    assert {"MAD_maggie", "MAD_x1e3", "MADu_maggie", "Grad_x1e-3", "IMQ_mad", "MAD_x1e3_std"} <= set(metrics)
    assert all(v is None or isinstance(v, float) for v in metrics.values())
    assert "Table 5 layout" in md and "mean (std) over the sets" in md and "REC_0.5" in proc.stdout
    assert {r["mask_set"] for r in rows} == {"masks_matched_m1", "masks_matched_m2"} and len(rows) == 4
    skipped = {(r["mask_set"], r["name"]): r["maggie_skipped"] for r in rows}
    assert skipped[("masks_matched_m2", "b")] == "no guidance mask in this mask set"  # decided by a worker
    assert skipped[("masks_matched_m1", "b")] == ""
    text = "\n".join(problems)
    assert "masks_matched_m3" in text and "set left out" in text and "no prediction folder" in text
    # a checkpoint cannot be scored on mask sets: the error says what to do
    # (before the checkpoint is even looked for: x.ckpt does not exist)
    bad = eval_app("data=mhim2k", f"data.root={root}", "ckpt_path=x.ckpt", f"run_dir={run}", check=False)
    assert bad.returncode != 0 and "scored from prediction folders" in bad.stderr
    assert "checkpoint not found" not in bad.stderr


def test_vhim60_videos_with_our_and_maggies_prediction_layouts(tmp_path: Path):
    root, pred, run = tmp_path / "V-HIM60", tmp_path / "pred", tmp_path / "run"
    vhim_tree(root, pred)
    write_alpha(pred / "comp_easy" / "pha" / "00009" / "0" / "0.png", box(4, 18, 4, 16))  # no such video
    eval_app("data=vhim60", f"data.root={root}", f"pred_dir={pred}", f"run_dir={run}", "workers=0")
    metrics, md, rows, problems = _outputs(run)
    assert {"dtSSD_x1e2", "dtSSD_maggie", "MESSDdt_x1e3", "MESSDdt_maggie", "REC_0.5"} <= set(metrics)
    assert "Table 7 layout" in md and len(rows) == 12 and rows[0]["video"] == "00000"
    assert (run / "per_video.csv").read_text().count("\n") == 3
    assert any("no prediction for 2 frames" in line for line in problems)
    assert any("00009" in line and "without ground truth" in line for line in problems)


def test_him2k_layout_on_real_photos_with_a_missing_folder(coco_persons: Path, tmp_path: Path):
    """data=him2k on the COCO photos: the ground truth scored as a prediction, one image's folder removed."""
    pred, run = tmp_path / "pred", tmp_path / "run"
    shutil.copytree(coco_persons / "alphas", pred)
    gone = sorted(pred.iterdir())[0]
    missed = len(list(gone.glob("*.png")))
    shutil.rmtree(gone)
    eval_app("data=him2k", f"data.root={coco_persons}", f"pred_dir={pred}", f"run_dir={run}", "workers=2")
    metrics, md, rows, problems = _outputs(run)
    total = sum(len(list(d.glob("*.png"))) for d in (coco_persons / "alphas").iterdir())
    assert metrics["REC_0.5"] == pytest.approx((total - missed) / total) and metrics["ACC_0.5"] == 1.0
    assert metrics["MAD_x1e3"] > 0 and metrics["EMAD_0.5"] == 0.0  # the missed people are all the error
    assert any(gone.name in line and "no prediction folder" in line for line in problems)
    assert len(rows) == 4 and "Table I layout" in md
