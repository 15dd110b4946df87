"""dtSSD and MESSDdt: hand-computed cases, MaGGIe's frame groups and quirks, an independent cross-check."""

from __future__ import annotations

import maggie_reference as ref
import numpy as np
import pytest

from e2e_him.metrics.temporal import (
    TemporalMetrics,
    dtssd_maggie,
    dtssd_usual,
    gt_flow,
    maggie_groups,
    maggie_uint8,
    messddt_maggie,
    messddt_usual,
)


def test_maggie_groups_of_test_py_and_eval_baseline():
    frames, pairs = maggie_groups(30, "clip3")
    assert frames[:2] == [[0], [1]] and frames[-2:] == [[26], [27, 28, 29]] and len(frames) == 28
    assert pairs[0] == [0, 1] and pairs[-2] == [25, 26] and pairs[-1] == [26, 27, 28, 29]
    assert sum(len(p) - 1 for p in pairs) == 29  # every frame pair exactly once
    assert sorted(t for f in frames for t in f) == list(range(30))
    assert maggie_groups(5, "clip3") == ([[0], [1], [2, 3, 4]], [[0, 1], [1, 2, 3, 4]])
    assert maggie_groups(4, "clip3") == ([[0, 1, 2, 3]], [[0, 1, 2, 3]])  # MaGGIe's loop needs 5 frames
    assert maggie_groups(6, "video") == ([list(range(6))], [list(range(6))])
    with pytest.raises(ValueError, match="protocol"):
        maggie_groups(6, "clip8")


def test_dtssd_by_hand():
    # 3 frames of 2 x 5 px; the prediction flickers on one pixel by +0.5 in frame 1: D_0 = +0.5, D_1 = -0.5
    gt = np.zeros((3, 2, 5), np.float32)
    pred = gt.copy()
    pred[1, 0, 0] = 0.5
    np.testing.assert_allclose(dtssd_usual(pred, gt), [np.sqrt(0.25 / 10) * 100] * 2)
    assert dtssd_maggie(pred, gt) == pytest.approx(0.1 * np.sqrt(0.5))
    # a constant error is temporally consistent
    assert dtssd_usual(gt + 0.3, gt).max() == pytest.approx(0.0)


def test_messddt_warps_the_error_along_the_ground_truth_motion():
    # a 20 x 20 square moving 3 px right; the prediction carries the same 0.2 error band with it: no MESSDdt
    gt = np.zeros((2, 48, 64), np.float32)
    gt[0, 14:34, 10:30] = 1.0
    gt[1, 14:34, 13:33] = 1.0
    pred = gt.copy()
    pred[0, 14:34, 10:20] = 0.8
    pred[1, 14:34, 13:23] = 0.8
    flows = [gt_flow(gt[0], gt[1])]
    moved = messddt_usual(pred, gt, flows)[0]
    # the same error left behind (not moving with the person) is inconsistent
    still = pred.copy()
    still[1] = gt[1]
    still[1, 14:34, 10:20] = np.where(gt[1, 14:34, 10:20] > 0, 0.8, 0.2)
    assert moved < 0.25 * messddt_usual(still, gt, flows)[0]


def test_messddt_maggie_axis_swap_by_hand():
    # static 4 x 6 frames (no motion), the same error e at pixel (row 1, col 3) in both frames.
    # usual: |E_0^2 - E_1^2| = 0. MaGGIe's index reads row clamp(col, 0, 3), column clamp(row, 0, 5):
    # the warped E_1^2 has e^2 at (row 3, col 1), so |.| = e^2 at (1, 3) and at (3, 1): 2 e^2 / (24 + 1) * 1e4
    gt = np.zeros((2, 4, 6), np.float32)
    pred = gt.copy()
    pred[:, 1, 3] = 0.5
    flows = [np.zeros((4, 6, 2), np.float32)]
    assert messddt_usual(pred, gt, flows)[0] == 0.0
    assert messddt_maggie(pred, gt, flows) == pytest.approx(2 * 0.25 / 25 * 1e4)


def test_messddt_maggie_reads_every_warped_frame_from_the_second():
    # square frames, no motion, an error only in frame 2 of 3: MaGGIe compares frames 0 and 1 with frame 1
    # (torch.take on the stack of frames 1..T-1), so frame 2's error never counts
    gt = np.zeros((3, 5, 5), np.float32)
    pred = gt.copy()
    pred[2, 2, 2] = 0.5
    flows = [np.zeros((5, 5, 2), np.float32)] * 2
    assert messddt_maggie(pred, gt, flows) == 0.0
    np.testing.assert_allclose(messddt_usual(pred, gt, flows), [0.0, 0.25 / 25 * 1e3])


def test_uint8_conversion_truncates_like_maggie():
    # 0.2 * 255 in float32 is 51.000004 -> 51; 0.7 * 255 = 178.5 -> 178 (truncated, not rounded)
    assert maggie_uint8(np.array([0.2, 0.7, 1.0], np.float32)).tolist() == [51, 178, 255]


def _moving_video(rng, frames=4, h=36, w=52, people=2):
    gt = np.zeros((frames, people, h, w), np.float32)
    for k in range(people):
        for t in range(frames):
            r, c = 4 + 2 * t + 10 * k, 5 + 3 * t + 20 * k
            gt[t, k, r : r + 14, c : c + 12] = 1.0
    pred = np.clip(gt + 0.2 * rng.standard_normal(gt.shape).astype(np.float32) * (gt > 0), 0, 1)
    return np.round(pred * 255) / 255, gt


def test_agrees_with_an_independent_implementation_of_maggies_definitions():
    pred, gt = _moving_video(np.random.default_rng(0))
    pred = pred.astype(np.float32)
    score, count = ref.dtssd(pred, gt)
    ours = [dtssd_maggie(pred[:, k], gt[:, k]) for k in range(gt.shape[1])]
    assert sum(ours) == pytest.approx(score, rel=1e-6) and count == len(ours)
    score, count = ref.messddt(pred, gt)
    ours = []
    for k in range(gt.shape[1]):
        flows = [gt_flow(gt[t, k], gt[t + 1, k]) for t in range(gt.shape[0] - 1)]
        ours.append(messddt_maggie(pred[:, k], gt[:, k], flows))
    assert sum(ours) == pytest.approx(score, rel=1e-5) and count == len(ours)


def test_temporal_metric_means_and_switch():
    m = TemporalMetrics(messddt=False)
    m.update({"dtSSD_x1e2": [1.0, 3.0], "dtSSD_maggie": [2.0]})
    m.update({"dtSSD_x1e2": [5.0], "dtSSD_maggie": [4.0]})
    out = {k: float(v) for k, v in m.compute().items()}
    assert out == {"dtSSD_maggie": 3.0, "dtSSD_x1e2": 3.0}
