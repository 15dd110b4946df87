"""InstMatt's IMQ / RQ / MQ on hand-built scenes (conftest: A 20 px, B 25 px, C 6 px extra, 10x10 image)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metric_scenes import rect

from e2e_him.metrics import IMQMetric, pair_similarities

ERRORS = ("mad", "mse", "grad", "conn")


def _score(preds, targets, **kwargs) -> dict[str, float]:
    m = IMQMetric(**kwargs)
    m.update(preds, targets)
    return {k: float(v) for k, v in m.compute().items()}


def test_keys():
    out = _score([torch.zeros(0, 4, 4)], [torch.zeros(0, 4, 4)])
    head = [f"IMQ_{e}" for e in ERRORS] + ["RQ"] + [f"MQ_{e}" for e in ERRORS]
    assert list(out) == head + [f"{k}_0.75" for k in head]
    assert all(v == 0.0 for v in out.values())  # empty data set: 0, not NaN


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_perfect_and_swapped_prediction_score_one(two_people, order):
    out = _score([two_people["gt"][order]], [two_people["gt"]])
    assert out == {k: 1.0 for k in out}


def test_one_missed_person(two_people):
    # TP = 1 (similarity 1), FP = 0, FN = 1: IMQ = 1 / (1 + 0.5) = 2/3, RQ = 2/3, MQ = 1
    out = _score([two_people["A"][None]], [two_people["gt"]])
    for e in ERRORS:
        assert out[f"IMQ_{e}"] == pytest.approx(2 / 3) and out[f"MQ_{e}"] == 1.0
    assert out["RQ"] == pytest.approx(2 / 3) and out["RQ_0.75"] == pytest.approx(2 / 3)


def test_one_extra_person(two_people):
    # TP = 2, FP = 1, FN = 0: IMQ = 2 / (2 + 0.5) = 0.8
    preds = torch.stack([two_people["A"], two_people["B"], two_people["C"]])
    out = _score([preds], [two_people["gt"]])
    assert out["IMQ_mad"] == pytest.approx(0.8) and out["RQ"] == pytest.approx(0.8) and out["MQ_conn"] == 1.0


def test_one_matte_off_by_a_constant(two_people):
    # A predicted at 0.9: union = A's 20 px, err averaged over |U| + 1 = 21 px.
    # MAD: err = 0.1 * 20 / 21 = 2/21 -> s = 1 - 10 * 2/21 = 1/21;   IMQ_mad = (1 + 1/21) / 2 = 11/21
    # MSE: err = 0.01 * 20 / 21 = 0.2/21 -> s = 1 - 2/21 = 19/21;    IMQ_mse = (1 + 19/21) / 2 = 20/21
    # Conn: level of A's pixels is 0.9 (they drop out at 1.0); d_pred = 0, d_gt = 0.1 < 0.15 -> s = 1
    # Grad: only A's edge differs (gradient 0.9x) -> 0 < s < 1
    preds = torch.stack([two_people["A"] * 0.9, two_people["B"]])
    out = _score([preds], [two_people["gt"]])
    assert out["IMQ_mad"] == pytest.approx(11 / 21, rel=1e-6)
    assert out["IMQ_mse"] == pytest.approx(20 / 21, rel=1e-6)
    assert out["IMQ_conn"] == pytest.approx(1.0)
    assert 0.5 < out["IMQ_grad"] < 1.0
    assert out["RQ"] == 1.0 and out["MQ_mad"] == out["IMQ_mad"]  # IMQ = RQ * MQ


def test_similarity_saturates_at_ten_percent_error():
    gt = rect(0, 5, 0, 4).numpy()  # 20 px
    # MAD err = 0.5 * 20 / 21 = 0.476, MSE err = 0.25 * 20 / 21 = 0.238: 10 * err > 1 -> s = 0 for both
    np.testing.assert_allclose(pair_similarities(gt * 0.5, gt)[:2], [0.0, 0.0])
    # MSE err = 0.04 * 20 / 21 = 0.8 / 21 -> s = 1 - 8/21 = 13/21
    assert pair_similarities(gt * 0.8, gt)[1] == pytest.approx(13 / 21, rel=1e-6)


def test_iou_threshold_uses_alpha_above_zero():
    # a faint 0.1 haze over the image makes the mask cover all 100 px: IoU 20 / 100 < 0.5 -> FP + FN
    gt = rect(0, 5, 0, 4)[None]
    out = _score([(gt + 0.1).clamp(0, 1)], [gt])
    assert out["RQ"] == 0.0 and out["IMQ_mad"] == 0.0 and out["MQ_mad"] == 0.0


def test_all_zero_prediction_has_no_nan(two_people):
    out = _score([torch.zeros(1, 10, 10)], [two_people["gt"]])
    assert all(math.isfinite(v) for v in out.values())
    assert out["RQ"] == 0.0 and out["IMQ_mad"] == 0.0


def test_permutation_and_merged_halves():
    gen = torch.Generator().manual_seed(3)
    gts = [(torch.rand(k, 16, 16, generator=gen) > 0.5).float() for k in (2, 3, 1)]
    preds = [(g * (0.9 + 0.1 * torch.rand(g.shape, generator=gen))) for g in gts]
    whole = IMQMetric()
    whole.update(preds, gts)
    ref = {k: float(v) for k, v in whole.compute().items()}
    assert 0.0 < ref["IMQ_mad"] < 1.0
    permuted = _score([p.flip(0) for p in preds], gts)
    assert permuted == pytest.approx(ref, rel=1e-12)
    first, second = IMQMetric(), IMQMetric()
    first.update(preds[:1], gts[:1])
    second.update(preds[1:], gts[1:])
    first.merge_state(second)
    assert {k: float(v) for k, v in first.compute().items()} == pytest.approx(ref, rel=1e-12)
