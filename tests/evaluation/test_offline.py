"""Scoring folders of PNG mattes, per-image rows and reports; the real COCO person masks of ../shared."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from e2e_him.data.io import write_alpha
from e2e_him.evaluation import iter_ground_truth, read_instance_folder, score_prediction_dir, write_report


def _write_folder(folder: Path, mattes: np.ndarray, names=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, m in enumerate(mattes):
        write_alpha(folder / (names[k] if names else f"{k:02d}.png"), m)


def _shift(mattes: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move mattes down by dy and right by dx pixels, filling with zeros."""
    out = np.zeros_like(mattes)
    h, w = mattes.shape[-2:]
    out[..., dy:, dx:] = mattes[..., : h - dy, : w - dx]
    return out


def test_read_instance_folder_sorts_numerically_and_checks_sizes(tmp_path):
    values = np.arange(12, dtype=np.float32) / 20  # 0.0, 0.05, ..., 0.55: person k has alpha k / 20
    mattes = values[:, None, None] * np.ones((12, 3, 4), dtype=np.float32)
    _write_folder(tmp_path / "img", mattes, names=[f"{k}.png" for k in range(12)])  # 0.png ... 11.png
    (tmp_path / "img" / "notes.txt").write_text("ignored")
    out = read_instance_folder(tmp_path / "img", size=(3, 4))
    assert out.shape == (12, 3, 4)
    np.testing.assert_allclose(
        out[:, 0, 0], np.round(values * 255) / 255
    )  # 10.png after 9.png, not after 1.png

    (tmp_path / "empty").mkdir()
    assert read_instance_folder(tmp_path / "empty", size=(3, 4)).shape == (0, 3, 4)
    with pytest.raises(ValueError, match="no image size"):
        read_instance_folder(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"img[/\\]0\.png: matte size 3x4 .* 5x4"):
        read_instance_folder(tmp_path / "img", size=(5, 4))


def test_score_prediction_dir_missing_folder_wrong_size_and_report(tmp_path):
    a = np.zeros((2, 8, 8), dtype=np.float32)
    a[0, :4, :4] = 1.0
    a[1, 4:, 4:] = 1.0
    b = a[:1].copy()
    ground_truth = [("a", a), ("b", b)]
    pred_dir = tmp_path / "pred"
    _write_folder(pred_dir / "a", a[::-1])  # reversed order: must not matter
    _write_folder(pred_dir / "stray", a)  # no ground truth of that name

    # "b" has no folder: scored as no predictions, and said so
    with pytest.warns(UserWarning) as record:
        metrics, rows = score_prediction_dir(pred_dir, ground_truth, metrics=("instance", "imq", "human"))
    messages = " ".join(str(w.message) for w in record)
    assert "no prediction folder" in messages and "b" in messages and "stray" in messages
    # people: 3, predictions: 2, correct: 2 -> REC = 2/3, ACC = 1; IMQ = 2 / (2 + 0.5 * 1) = 0.8
    assert metrics["REC_0.5"] == pytest.approx(2 / 3) and metrics["ACC_0.75"] == 1.0
    assert metrics["EMAD_0.5"] == 0.0 and metrics["IMQ_mad"] == pytest.approx(0.8)
    assert metrics["SAD"] == pytest.approx((0 + 16 / 1000) / 2)  # image b: its 16 px missed
    assert [r["name"] for r in rows] == ["a", "b"]
    assert rows[1]["prediction_missing"] and rows[1]["fn_0.5"] == 1 and rows[1]["mean_iou"] is None
    assert (
        rows[0]["matched_0.75"] == 2
        and rows[0]["mean_iou"] == 1.0
        and rows[0]["pair_ious"].startswith("00:01=")  # person 00 paired with prediction file 01
    )

    paths = write_report(tmp_path / "run", metrics, rows, title="tiny")
    loaded = json.loads(paths["json"].read_text())
    assert loaded["REC_0.5"] == pytest.approx(2 / 3) and all(isinstance(v, float) for v in loaded.values())
    md = paths["markdown"].read_text()
    assert "| EMSE_0.5 | EMAD_0.5 | REC_0.5 | ACC_0.5 | EMSE_0.75 | EMAD_0.75 | REC_0.75 | ACC_0.75 |" in md
    assert "| 0.0000 | 0.0000 | 0.6667 | 1.0000 |" in md and "IMQ_mad" in md and "| SAD |" in md
    with paths["csv"].open() as f:
        table = list(csv.DictReader(f))
    assert [r["name"] for r in table] == ["a", "b"] and table[1]["emad_0.5"] == ""

    # a prediction at another aspect ratio is skipped and listed (its person is missed); resize=error stops
    _write_folder(pred_dir / "b", np.zeros((1, 8, 9), dtype=np.float32))
    with pytest.warns(UserWarning) as record:
        metrics, rows = score_prediction_dir(pred_dir, ground_truth)
    assert any("skipped or changed" in str(w.message) for w in record)
    assert rows[1]["num_pred"] == 0 and rows[1]["problems"] == 1
    with pytest.raises(ValueError, match=r"b[/\\]00\.png"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score_prediction_dir(pred_dir, ground_truth, resize="error")
    with pytest.raises(ValueError, match="unknown metrics"):
        score_prediction_dir(pred_dir, ground_truth, metrics=("sad",))


def _coco(coco_persons: Path) -> list[tuple[str, np.ndarray]]:
    return list(iter_ground_truth(coco_persons / "alphas", coco_persons / "images"))


def test_coco_ground_truth_scored_against_itself(coco_persons):
    gt = _coco(coco_persons)
    assert sum(len(m) for _, m in gt) == 14
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every image has its folder: no warning
        metrics, rows = score_prediction_dir(coco_persons / "alphas", gt)
    for th in ("0.5", "0.75"):
        assert metrics[f"ACC_{th}"] == metrics[f"REC_{th}"] == 1.0
        assert metrics[f"EMSE_{th}"] == metrics[f"EMAD_{th}"] == 0.0
    assert all(v == 1.0 for k, v in metrics.items() if k.startswith(("IMQ", "RQ", "MQ")))
    assert all(r["fp_0.5"] == r["fn_0.5"] == 0 for r in rows)


def test_coco_shifted_copy_drops_as_expected(coco_persons, tmp_path):
    gt = _coco(coco_persons)
    dy, dx = 3, 5
    ious, emads, emses = [], [], []
    for name, m in gt:
        shifted = _shift(m, dy, dx)
        _write_folder(tmp_path / name, shifted)
        # independent expectation, person by person (binary masks: |p - g| = (p - g)^2 = XOR)
        a, s = m > 0.5, shifted > 0.5
        ious += list((a & s).sum((1, 2)) / (a | s).sum((1, 2)))
        emads += list((a ^ s).mean((1, 2)))
        emses += list((a ^ s).mean((1, 2)))
    ious, emads, emses = np.array(ious), np.array(emads), np.array(emses)
    metrics, _ = score_prediction_dir(tmp_path, gt, metrics=("instance",))
    for th in (0.5, 0.75):
        ok = ious >= th
        assert 0 < ok.sum() < 14  # the shift makes some people fail each threshold
        assert metrics[f"REC_{th:g}"] == pytest.approx(ok.mean())
        assert metrics[f"ACC_{th:g}"] == pytest.approx(ok.mean())  # as many predictions as people
        assert metrics[f"EMAD_{th:g}"] == pytest.approx(emads[ok].mean(), rel=1e-9)
        assert metrics[f"EMSE_{th:g}"] == pytest.approx(emses[ok].mean(), rel=1e-9)


def test_coco_one_pixel_shift_imq(coco_persons, tmp_path):
    gt = _coco(coco_persons)
    sims, ious = [], []
    for name, m in gt:
        shifted = _shift(m, 0, 1)
        _write_folder(tmp_path / name, shifted)
        a, s = m > 0, shifted > 0
        union = (a | s).sum((1, 2))
        ious += list((a & s).sum((1, 2)) / union)
        sims += list(1 - np.minimum(10 * (a ^ s).sum((1, 2)) / (union + 1), 1))  # MAD over union, InstMatt
    ious, sims = np.array(ious), np.array(sims)
    metrics, _ = score_prediction_dir(tmp_path, gt, metrics=("imq",))
    tp = ious >= 0.5
    # TP + 0.5 FP + 0.5 FN = TP + (14 - TP) = 14
    assert metrics["IMQ_mad"] == pytest.approx(sims[tp].sum() / 14, rel=1e-9)
    assert metrics["IMQ_mse"] == pytest.approx(metrics["IMQ_mad"], rel=1e-9)  # binary: d^2 = |d|
    assert metrics["RQ"] == pytest.approx(tp.mean()) and 0 < metrics["IMQ_mad"] < 1
    assert 0 <= metrics["IMQ_grad"] < 1 and 0 <= metrics["IMQ_conn"] < 1
