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
    threshold_match,
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


def test_threshold_match_maximises_the_pairs_above_the_threshold():
    # the strip: IoU(A, P1) = 0.67, IoU(A, P2) = 0.29, IoU(B, P1) = 0.45, IoU(B, P2) = 0.
    # The Hungarian assignment (largest sum, 0.29 + 0.45 > 0.67) has no pair >= 0.5; at 0.5 the best is A-P1.
    iou = np.array([[40 / 60, 20 / 70], [18 / 40, 0.0]])
    p, g = hungarian_match(iou)
    assert (iou[p, g] >= 0.5).sum() == 0
    p, g = threshold_match(iou, 0.5)
    assert p.tolist() == [0] and g.tolist() == [0]
    p, g = threshold_match(iou, 0.4)  # both A-P1 and B-P1 pass, but P1 can be taken once: still one pair
    assert len(p) == 1
    assert len(threshold_match(iou, 0.7)[0]) == 0 and len(threshold_match(np.zeros((0, 2)), 0.5)[0]) == 0


def test_threshold_match_prefers_more_pairs_then_more_iou():
    # greedy on the best IoU (0.9, a0-g0) leaves g1 without a partner above 0.5: 1 pair;
    # the maximal matching takes a0-g1 and a1-g0: 2 pairs, although its summed IoU is lower than 0.9 + 0
    iou = np.array([[0.9, 0.6], [0.55, 0.1]])
    p, g = threshold_match(iou, 0.5)
    assert sorted(zip(p.tolist(), g.tolist())) == [(0, 1), (1, 0)]
    # among matchings of equal size, the larger summed IoU: (0.8 + 0.8) over (0.9 + 0.6)
    iou = np.array([[0.9, 0.8], [0.8, 0.6]])
    p, g = threshold_match(iou, 0.5)
    assert sorted(zip(p.tolist(), g.tolist())) == [(0, 1), (1, 0)]
    # more pairs even when they sum to less IoU: a0-g0 + a1-g1 (1.9, two pairs) against a0-g1 + a1-g2 + a2-g0
    # (1.5, three pairs). Maximising the summed IoU of the passing pairs alone would keep two
    iou = np.array([[0.95, 0.5, 0.0], [0.0, 0.95, 0.5], [0.5, 0.0, 0.0]])
    p, g = threshold_match(iou, 0.5)
    assert sorted(zip(p.tolist(), g.tolist())) == [(0, 1), (1, 2), (2, 0)]


def test_threshold_match_is_maximal_on_random_matrices():
    # brute force over every one-to-one matching of small matrices
    import itertools

    rng = np.random.default_rng(0)
    for k in range(300):
        th = (0.5, 0.75, 0.2)[k % 3]  # at 0.2 a larger summed IoU often has fewer pairs
        kp, kg = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        iou = rng.random((kp, kg)) * (rng.random((kp, kg)) > 0.3)
        best = 0
        for perm in itertools.permutations(range(kg), min(kp, kg)) if kp <= kg else []:
            best = max(best, sum(iou[i, j] >= th for i, j in enumerate(perm)))
        for perm in itertools.permutations(range(kp), min(kp, kg)) if kp > kg else []:
            best = max(best, sum(iou[i, j] >= th for j, i in enumerate(perm)))
        p, g = threshold_match(iou, th)
        assert len(p) == best and len(set(p)) == len(p) and len(set(g)) == len(g)
        assert (iou[p, g] >= th).all()


def test_pairing_by_name_and_by_iou():
    from e2e_him.metrics.matching import pair_by_iou, pair_by_name

    assert pair_by_name(["1", "00", "x"], ["00", "01", "02", "x"]) == [1, 0, None, 2]
    iou = np.array([[0.0, 0.7], [0.0, 0.2]])
    assert pair_by_iou(iou) == [None, 0]  # person 0 overlaps nothing: missed, not paired with IoU 0


def test_mask_counts_with_and_without_bit_counting(monkeypatch):
    from e2e_him.metrics.matching import mask_counts

    rng = np.random.default_rng(5)
    p, g = rng.random((3, 13, 17)) > 0.5, rng.random((2, 13, 17)) > 0.3
    expected = (p[:, None] & g[None]).sum((2, 3)), p.sum((1, 2)), g.sum((1, 2))
    for got in (mask_counts(p, g), None):
        if got is None:
            monkeypatch.delattr(np, "bitwise_count")
            got = mask_counts(p, g)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
