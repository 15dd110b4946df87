"""Whole-image human matting errors of the summed prediction (conftest: A 20 px, B 25 px, 10x10 = 100 px)."""

from __future__ import annotations

import math

import pytest
import torch
from metric_scenes import rect

from e2e_him.metrics import HumanMattingMetrics, merge_people


def _score(preds, targets, **kwargs) -> dict[str, float]:
    m = HumanMattingMetrics(**kwargs)
    m.update(preds, targets)
    return {k: float(v) for k, v in m.compute().items()}


def test_sum_of_people_equal_to_the_matte_is_perfect(two_people):
    gt = two_people["gt"].sum(0)
    out = _score([two_people["gt"]], [gt])
    assert list(out) == ["SAD", "MSE", "MAD", "Grad", "Conn"]
    assert all(v == 0.0 for v in out.values())
    assert _score([two_people["gt"].flip(0)], [gt[None]]) == out  # (1, H, W) target, any order


def test_one_missed_person(two_people):
    # B's 25 px missing: SAD = 25 / 1000, MSE = MAD = 25 / 100.
    # Conn: A is the largest component of pred & gt at every threshold, so B's pixels get level 0;
    # d_gt = 1 there -> phi_gt = 0, phi_pred = 1: 25 px of error 1 -> Conn = 25 / 1000
    out = _score([two_people["A"][None]], [two_people["gt"].sum(0)])
    assert out["SAD"] == pytest.approx(0.025) and out["MSE"] == 0.25 and out["MAD"] == 0.25
    assert out["Conn"] == pytest.approx(0.025)
    assert out["Grad"] > 0


def test_one_matte_off_by_a_constant(two_people):
    # A at 0.9: 20 px of error 0.1 -> SAD = 2 / 1000, MAD = 2 / 100, MSE = 0.2 / 100
    preds = torch.stack([two_people["A"] * 0.9, two_people["B"]])
    out = _score([preds], [two_people["gt"].sum(0)])
    assert (out["SAD"], out["MAD"], out["MSE"]) == pytest.approx((0.002, 0.02, 0.002), rel=1e-6)


def test_overlapping_people_are_clipped():
    # two people of 0.7 on the same 20 px: sum 1.4 -> clipped to 1 = the ground truth
    a = rect(0, 5, 0, 4)
    assert torch.equal(merge_people(torch.stack([a * 0.7, a * 0.7])), a)
    assert _score([torch.stack([a * 0.7, a * 0.7])], [a])["SAD"] == 0.0
    assert merge_people(torch.zeros(0, 3, 4)).shape == (3, 4)


def test_mean_over_images_and_merge(two_people):
    # image 1 perfect (MAD 0), image 2 all-zero prediction against A (MAD 0.2): mean MAD = 0.1
    gt = two_people["gt"].sum(0)
    preds, targets = [two_people["gt"], torch.zeros(0, 10, 10)], [gt, two_people["A"]]
    out = _score(preds, targets)
    assert out["MAD"] == pytest.approx(0.1) and all(math.isfinite(v) for v in out.values())
    first, second = HumanMattingMetrics(), HumanMattingMetrics()
    first.update(preds[:1], targets[:1])
    second.update(preds[1:], targets[1:])
    first.merge_state(second)
    assert {k: float(v) for k, v in first.compute().items()} == pytest.approx(out)


def test_without_grad_conn_and_bad_inputs(two_people):
    out = _score([two_people["gt"]], [two_people["gt"].sum(0)], grad_conn=False)
    assert list(out) == ["SAD", "MSE", "MAD"]
    with pytest.raises(ValueError, match="image 0"):
        HumanMattingMetrics().update([two_people["gt"]], [two_people["gt"]])  # (2, H, W) target
