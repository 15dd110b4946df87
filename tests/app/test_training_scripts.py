"""The diagnostics of docs/training.md: learning curves from a CSV log, and the segmentation ceiling probe."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_log(run: Path, steps: int = 60) -> None:
    """A CSV log as Lightning's CSVLogger writes it: train rows and sparse val rows, empty cells elsewhere."""
    keys = ["step", "train/loss_step", "train/loss_dice_step", "val/REC_0.5", "val/iou_mask"]
    (run / "csv").mkdir(parents=True)
    with (run / "csv" / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        for step in range(steps):
            writer.writerow({"step": step, "train/loss_step": 10 - step / 10, "train/loss_dice_step": 0.9})
            if step % 20 == 19:
                writer.writerow({"step": step, "val/REC_0.5": step / 100, "val/iou_mask": step / 200})


def test_read_log_keeps_each_metric_at_its_own_steps(tmp_path: Path):
    plot_training = load_script("plot_training")
    _write_log(tmp_path)
    log = plot_training.read_log(tmp_path)
    assert [s for s, _ in log["val/REC_0.5"]] == [19, 39, 59]
    assert log["val/REC_0.5"][-1][1] == pytest.approx(0.59)
    assert len(log["train/loss_step"]) == 60


def test_smooth_is_a_trailing_mean():
    smooth = load_script("plot_training").smooth
    assert np.allclose(smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    assert np.allclose(smooth(np.array([2.0, 4.0]), 1), [2.0, 4.0])


def test_plot_overlays_runs_into_one_picture(tmp_path: Path):
    plot_training = load_script("plot_training")
    _write_log(tmp_path / "a")
    _write_log(tmp_path / "b")
    out = plot_training.plot([tmp_path / "a", tmp_path / "b"], ["a", "b"], tmp_path / "curves.png", 5)
    assert out.is_file() and out.stat().st_size > 10_000
    with pytest.raises(FileNotFoundError, match="no CSV log"):
        plot_training.read_log(tmp_path / "missing")


def test_overlaid_runs_keep_one_colour_each_in_every_panel():
    style = load_script("plot_training").line_style
    assert style(0, 0, 1) == {} and style(0, 1, 1) == {}  # one run: a colour per metric, matplotlib's
    first, second = style(0, 0, 2), style(0, 1, 2)
    assert first["color"] == second["color"] and first["linestyle"] != second["linestyle"]
    assert style(1, 0, 2)["color"] != first["color"] and style(1, 0, 2)["linestyle"] == first["linestyle"]


def test_segmentation_ceiling_reports_a_union_iou(capsys):
    ceiling = load_script("segmentation_ceiling")
    ceiling.main(["--size", "64", "--steps", "2", "--every", "1", "--batch-size", "2", "--val-samples", "2"])
    lines = [line for line in capsys.readouterr().out.splitlines() if "union IoU" in line]
    assert [line.split(":")[0] for line in lines] == ["step 0", "step 1", "step 2"]
    ious = [float(line.split("union IoU ")[1].split()[0]) for line in lines]
    assert all(0.0 <= v <= 1.0 for v in ious)
