"""The paper's EMSE / EMAD / REC / ACC (Eq. 20) on hand-built scenes (conftest: A 20 px, B 25 px, 100 px)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metric_scenes import rect
from torchmetrics.utilities.data import dim_zero_sum

from e2e_him.metrics import InstanceMattingMetrics

KEYS = ["EMSE_0.5", "EMAD_0.5", "REC_0.5", "ACC_0.5", "EMSE_0.75", "EMAD_0.75", "REC_0.75", "ACC_0.75"]


def _score(preds, targets, **kwargs) -> dict[str, float]:
    m = InstanceMattingMetrics(**kwargs)
    m.update(preds, targets)
    return {k: float(v) for k, v in m.compute().items()}


def test_keys_in_table_order(two_people):
    assert list(_score([two_people["gt"]], [two_people["gt"]])) == KEYS


def test_perfect_prediction(two_people):
    out = _score([two_people["gt"]], [two_people["gt"]])
    assert out == {k: (0.0 if k.startswith("EM") else 1.0) for k in KEYS}


def test_swapped_order_is_perfect(two_people):
    out = _score([two_people["gt"].flip(0)], [two_people["gt"]])
    assert out == {k: (0.0 if k.startswith("EM") else 1.0) for k in KEYS}


def test_one_missed_person(two_people):
    # N_pred = 1, N_gt = 2, N_TH = 1 (A exact): ACC = 1/1, REC = 1/2, errors 0
    out = _score([two_people["A"][None]], [two_people["gt"]])
    for th in ("0.5", "0.75"):
        assert (out[f"ACC_{th}"], out[f"REC_{th}"], out[f"EMSE_{th}"], out[f"EMAD_{th}"]) == (
            1.0,
            0.5,
            0.0,
            0.0,
        )


def test_one_extra_person(two_people):
    # N_pred = 3, N_gt = 2, N_TH = 2: ACC = 2/3, REC = 1
    preds = torch.stack([two_people["A"], two_people["B"], two_people["C"]])
    out = _score([preds], [two_people["gt"]])
    assert out["ACC_0.5"] == pytest.approx(2 / 3) and out["ACC_0.75"] == pytest.approx(2 / 3)
    assert out["REC_0.5"] == out["REC_0.75"] == 1.0
    assert out["EMSE_0.5"] == out["EMAD_0.75"] == 0.0


def test_one_matte_off_by_a_constant(two_people):
    # A predicted at 0.9 instead of 1 (still IoU 1 at the 0.5 mask threshold), B exact.
    # per-matte errors over all 100 px: A: MAD = 0.1 * 20 / 100 = 0.02, MSE = 0.01 * 20 / 100 = 0.002; B: 0.
    # EMAD = (0.02 + 0) / 2 = 0.01, EMSE = (0.002 + 0) / 2 = 0.001
    preds = torch.stack([two_people["A"] * 0.9, two_people["B"]])
    out = _score([preds], [two_people["gt"]])
    for th in ("0.5", "0.75"):
        assert out[f"EMAD_{th}"] == pytest.approx(0.01, rel=1e-6)
        assert out[f"EMSE_{th}"] == pytest.approx(0.001, rel=1e-5)
        assert out[f"ACC_{th}"] == out[f"REC_{th}"] == 1.0


def test_iou_exactly_at_threshold_counts():
    # pred covers 10 of A's 20 px: IoU = 10 / 20 = 0.5 -> correct at 0.5 (IoU >= TH), not at 0.75.
    # its error: 10 missed px of 100 -> MAD = MSE = 0.1
    gt = rect(0, 5, 0, 4)[None]
    pred = rect(0, 5, 0, 2)[None]
    out = _score([pred], [gt])
    assert (out["REC_0.5"], out["ACC_0.5"], out["EMAD_0.5"], out["EMSE_0.5"]) == pytest.approx(
        (1, 1, 0.1, 0.1)
    )
    assert (out["REC_0.75"], out["ACC_0.75"]) == (0.0, 0.0)
    assert out["EMAD_0.75"] == out["EMSE_0.75"] == 1.0  # no correct pair: empty_error


def test_all_zero_prediction_gives_zero_recall_and_no_nan(two_people):
    for preds in (torch.zeros(1, 10, 10), torch.zeros(0, 10, 10)):
        out = _score([preds], [two_people["gt"]])
        assert out["REC_0.5"] == out["REC_0.75"] == out["ACC_0.5"] == 0.0
        assert all(math.isfinite(v) for v in out.values())
        assert out["EMSE_0.5"] == out["EMAD_0.5"] == 1.0
    # nothing at all (no people, no predictions) is also finite
    out = _score([torch.zeros(0, 10, 10)], [torch.zeros(0, 10, 10)], empty_error=0.0)
    assert all(v == 0.0 for v in out.values())


def test_counts_are_summed_over_the_data_set_before_dividing(two_people):
    # image 1: perfect (2 people); image 2: 1 of 4 people found, exact.
    # REC = (2 + 1) / (2 + 4) = 0.5, ACC = 3 / 3 = 1 (a mean of per-image RECs would give (1 + 0.25) / 2)
    gt2 = torch.stack([rect(0, 2, 0, 2), rect(3, 5, 3, 5), rect(6, 8, 6, 8), rect(0, 2, 8, 10)])
    out = _score([two_people["gt"], gt2[:1]], [two_people["gt"], gt2])
    assert out["REC_0.5"] == 0.5 and out["ACC_0.5"] == 1.0


def test_permuting_predictions_changes_nothing():
    gen = torch.Generator().manual_seed(0)
    gt = (torch.rand(4, 24, 24, generator=gen) > 0.6).float()
    preds = (gt + 0.6 * torch.rand(6, 24, 24, generator=gen)[:4]).clamp(0, 1)
    preds = torch.cat([preds, torch.rand(2, 24, 24, generator=gen)])  # 2 noisy extras
    ref = _score([preds], [gt])
    for perm in ([5, 4, 3, 2, 1, 0], [2, 0, 5, 1, 4, 3]):
        assert _score([preds[perm]], [gt]) == pytest.approx(ref, rel=1e-12)


def test_binarize_threshold_is_a_parameter():
    # a faint 0.1 haze over the whole image: with alpha > 0 masks the prediction covers all 100 px, IoU 20/100
    gt = rect(0, 5, 0, 4)[None]
    pred = (gt + 0.1).clamp(0, 1)
    assert _score([pred], [gt])["REC_0.5"] == 1.0
    assert _score([pred], [gt], binarize_threshold=0.0)["REC_0.5"] == 0.0


def test_merged_halves_equal_one_pass(two_people):
    gen = torch.Generator().manual_seed(1)
    images = [(torch.rand(k, 12, 12, generator=gen) > 0.5).float() for k in (1, 3, 2, 0)]
    preds = [(g + 0.3 * torch.rand(g.shape, generator=gen)).clamp(0, 1) for g in images]
    preds[1] = preds[1][:2]
    whole = InstanceMattingMetrics()
    whole.update(preds, images)
    first, second = InstanceMattingMetrics(), InstanceMattingMetrics()
    first.update(preds[:2], images[:2])
    second.update(preds[2:], images[2:])
    first.merge_state(second)  # what a cross-process "sum" reduction does
    a = {k: float(v) for k, v in whole.compute().items()}
    b = {k: float(v) for k, v in first.compute().items()}
    assert a == pytest.approx(b, rel=1e-12)
    assert all(fx is dim_zero_sum for fx in whole._reductions.values())  # every state is all-reduced by sum


def test_bad_inputs_name_the_image():
    m = InstanceMattingMetrics()
    with pytest.raises(ValueError, match="image 0"):
        m.update([torch.zeros(1, 4, 4)], [torch.zeros(1, 4, 5)])
    with pytest.raises(ValueError, match="one entry per image"):
        m.update([torch.zeros(1, 4, 4)], [])
    with pytest.raises(ValueError, match="binarize_threshold"):
        InstanceMattingMetrics(binarize_threshold=1.0)


def test_mixed_precision_autocast_does_not_change_counts():
    # under bfloat16 autocast a matmul of masks would round counts above 256; update() turns autocast off
    gen = torch.Generator().manual_seed(2)
    gt = (torch.rand(3, 48, 48, generator=gen) > 0.3).float()  # ~1600 px per person
    preds = (gt * (0.6 + 0.4 * torch.rand(gt.shape, generator=gen)))[[2, 0]]
    ref = _score([preds], [gt])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _score([preds], [gt]) == ref


def _strip(r0: int, r1: int, rows: int = 100, cols: int = 4) -> torch.Tensor:
    m = torch.zeros(rows, cols)
    m[r0:r1] = 1.0
    return m


def test_issue_counter_example_recall_is_maximal_per_threshold():
    # P1 = rows 0-39, P2 = rows 40-69 of a 100-row strip; A = rows 0-59, B = rows 0-17.
    # Hungarian on the summed IoU pairs A-P2 (0.29) and B-P1 (0.45): REC@0.5 would be 0. Matching per
    # threshold finds A-P1 (IoU 40/60 = 0.67): N_0.5 = 1 -> REC = 1/2, ACC = 1/2; its error: rows 40-59
    # wrong = 0.2 per px
    gt = torch.stack([_strip(0, 40), _strip(40, 70)])
    preds = torch.stack([_strip(0, 60), _strip(0, 18)])
    out = _score([preds], [gt])
    assert out["REC_0.5"] == 0.5 and out["ACC_0.5"] == 0.5
    assert out["EMAD_0.5"] == pytest.approx(0.2) and out["EMSE_0.5"] == pytest.approx(0.2)
    assert out["REC_0.75"] == 0.0  # no pair reaches 0.75
    # the per-image report still shows the Hungarian pairs, and the per-threshold counts
    from e2e_him.metrics import match_image

    match = match_image(preds, gt)
    assert sorted(zip(match.hungarian.pred_index.tolist(), match.hungarian.gt_index.tolist())) == [
        (0, 1),
        (1, 0),
    ]
    assert len(match.at(0.5)) == 1 and match.at(0.5).pred_index.tolist() == [0]


def test_imq_keeps_instmatts_hungarian_rule_on_the_counter_example():
    # InstMatt's script assigns once (Hungarian on 1 - IoU, masks alpha > 0) and thresholds afterwards: TP = 0
    from e2e_him.metrics import IMQMetric

    gt = torch.stack([_strip(0, 40), _strip(40, 70)])
    preds = torch.stack([_strip(0, 60), _strip(0, 18)])
    m = IMQMetric()
    m.update([preds], [gt])
    assert float(m.compute()["RQ"]) == 0.0


def test_cpu_shortcuts_equal_the_dense_device_paths(monkeypatch):
    # the CPU paths (bit-counted IoU, per-pair bounding boxes) against the dense ones that run on GPUs
    from e2e_him.metrics import instance_matting, matching

    gen = torch.Generator().manual_seed(4)
    gt = (torch.rand(3, 40, 50, generator=gen) > 0.7).float()
    preds = (gt * (0.5 + 0.5 * torch.rand(gt.shape, generator=gen)))[[2, 0, 1]]
    p_idx, g_idx = np.array([0, 1, 2]), np.array([2, 0, 1])
    for a, b in zip(
        instance_matting._pair_errors_on_boxes(preds, gt, p_idx, g_idx),
        instance_matting._pair_errors_dense(preds, gt, p_idx, g_idx),
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    fast = matching.mask_iou(preds > 0.5, gt > 0.5)
    monkeypatch.delattr(np, "bitwise_count")  # numpy < 2: the matrix product
    np.testing.assert_array_equal(matching.mask_iou(preds > 0.5, gt > 0.5).numpy(), fast.numpy())
