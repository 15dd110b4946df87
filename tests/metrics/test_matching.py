"""IoU and one-to-one matching shared by the instance metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from e2e_him.metrics.matching import (
    check_thresholds,
    format_threshold,
    hungarian_match,
    mask_iou,
    match_instances,
)


def _rect(h, w, r0, r1, c0, c1, value=1.0):
    m = torch.zeros(h, w)
    m[r0:r1, c0:c1] = value
    return m


def test_mask_iou_by_hand():
    a = _rect(4, 4, 0, 2, 0, 2).bool()  # 4 px
    b = _rect(4, 4, 0, 2, 1, 3).bool()  # 4 px, overlap 2 -> IoU 2 / 6
    empty = torch.zeros(4, 4, dtype=torch.bool)
    iou = mask_iou(torch.stack([a, empty]), torch.stack([a, b, empty]))
    expected = [[1.0, 2 / 6, 0.0], [0.0, 0.0, 0.0]]  # an empty union has IoU 0, never a match
    np.testing.assert_allclose(iou.numpy(), expected)
    assert mask_iou(torch.zeros(0, 4, 4, dtype=torch.bool), torch.stack([a])).shape == (0, 1)


def test_hungarian_maximises_total_iou_not_greedy():
    # greedy would take (0, 0) = 0.6 and leave (1, 1) = 0.0; the best one-to-one total is 0.5 + 0.55 = 1.05
    iou = np.array([[0.6, 0.5], [0.55, 0.0]])
    p, g = hungarian_match(iou)
    assert p.tolist() == [1, 0] and g.tolist() == [0, 1]
    p, g = hungarian_match(np.zeros((0, 3)))
    assert len(p) == len(g) == 0


def test_match_instances_binarises_with_strict_threshold():
    gt = _rect(4, 5, 0, 4, 0, 5)[None]  # 20 px
    pred = _rect(4, 5, 0, 2, 0, 5, value=0.5)[None]  # 10 px of alpha exactly 0.5
    _, _, iou = match_instances(pred, gt, binarize_threshold=0.5)
    assert iou.tolist() == [0.0]  # 0.5 is not > 0.5
    _, _, iou = match_instances(pred, gt, binarize_threshold=0.0)
    assert iou.tolist() == [0.5]  # 10 / 20


def test_threshold_checks_and_format():
    assert format_threshold(0.5) == "0.5" and format_threshold(0.75) == "0.75"
    assert check_thresholds([0.5, 0.75]) == (0.5, 0.75)
    for bad in ([], [0.0], [1.5], [0.5, 0.5]):
        with pytest.raises(ValueError, match="iou_thresholds"):
            check_thresholds(bad)
