"""HungarianMatcher (Eq. 9-12): hand-computed costs, known permutations, empty and padded targets."""

from __future__ import annotations

import math

import pytest
import torch

from e2e_him.losses import HungarianMatcher

LN2, LN3, LN4, LN43 = math.log(2.0), math.log(3.0), math.log(4.0), math.log(4.0 / 3.0)


def test_cost_matrix_2x2_by_hand():
    # Two queries, two people, masks of 1x2 pixels at H/8 (ground truth given at that size).
    # q0: class logits (0, 0) -> p_human 1/2; mask logits (0, 0) -> p = (1/2, 1/2)
    # q1: class logits (0, ln 3) -> p_human 3/4; mask logits (ln 3, -ln 3) -> p = (3/4, 1/4)
    # x0 = (1, 0), x1 = (1, 1).
    # Focal terms with alpha 0.25, gamma 2: f1(p) = 0.25 (1-p)^2 (-ln p), f0(p) = 0.75 p^2 (-ln(1-p)):
    #   f1(1/2) = ln2/16, f0(1/2) = 3 ln2/16; f1(3/4) = ln(4/3)/64, f0(1/4) = 3 ln(4/3)/64, f1(1/4) = 9 ln4/64
    #   C_focal(q0, x0) = (ln2/16 + 3 ln2/16)/2 = ln2/8;      C_focal(q0, x1) = ln2/16
    #   C_focal(q1, x0) = (ln(4/3)/64 + 3 ln(4/3)/64)/2 = ln(4/3)/32
    #   C_focal(q1, x1) = (ln(4/3)/64 + 9 ln4/64)/2
    # Dice (smooth 1), sum p = 1 for both queries:
    #   (q0, x0): 1 - (2*0.5 + 1)/(1 + 1 + 1) = 1/3;  (q0, x1): 1 - (2*1 + 1)/(1 + 2 + 1) = 1/4
    #   (q1, x0): 1 - (2*0.75 + 1)/(1 + 1 + 1) = 1/6; (q1, x1): 1 - (2*1 + 1)/(1 + 2 + 1) = 1/4
    pred_logits = torch.tensor([[[0.0, 0.0], [0.0, LN3]]])
    pred_masks = torch.tensor([[[[0.0, 0.0]], [[LN3, -LN3]]]])  # (1, 2, 1, 2)
    gt = torch.tensor([[[[1.0, 0.0]], [[1.0, 1.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor(
        [
            [
                [-0.5 + LN2 / 8 + 1 / 3, -0.5 + LN2 / 16 + 1 / 4],
                [-0.75 + LN43 / 32 + 1 / 6, -0.75 + (LN43 / 64 + 9 * LN4 / 64) / 2 + 1 / 4],
            ]
        ]
    )
    matcher = HungarianMatcher()
    cost = matcher.cost_matrix(pred_logits, pred_masks, gt)
    torch.testing.assert_close(cost, expected, rtol=1e-5, atol=1e-6)
    # totals: (q0->x0, q1->x1) = -0.0800 - 0.4003 = -0.480; (q0->x1, q1->x0) = -0.2067 - 0.5743 = -0.781
    ((q, t),) = matcher(
        {"pred_logits": pred_logits, "pred_masks": pred_masks}, gt, torch.ones(1, 2, dtype=torch.bool)
    )
    assert q.tolist() == [0, 1] and t.tolist() == [1, 0]
    assert q.dtype == torch.int64 and t.dtype == torch.int64


def test_cost_weights_scale_each_term():
    g = torch.Generator().manual_seed(0)
    logits, masks = torch.randn(1, 3, 2, generator=g), torch.randn(1, 3, 4, 4, generator=g)
    gt = (torch.rand(1, 2, 4, 4, generator=g) > 0.5).float()
    only = {
        name: HungarianMatcher(**{k: float(k == name) for k in ("cost_class", "cost_focal", "cost_dice")})
        for name in ("cost_class", "cost_focal", "cost_dice")
    }
    parts = {k: m.cost_matrix(logits, masks, gt) for k, m in only.items()}
    total = HungarianMatcher(cost_class=2.0, cost_focal=3.0, cost_dice=0.5).cost_matrix(logits, masks, gt)
    torch.testing.assert_close(
        total, 2 * parts["cost_class"] + 3 * parts["cost_focal"] + 0.5 * parts["cost_dice"]
    )
    torch.testing.assert_close(parts["cost_class"], -logits.softmax(-1)[..., 1:].expand(1, 3, 2))


def _clear_predictions(gt: torch.Tensor, perm: list[int], n: int) -> dict[str, torch.Tensor]:
    """Query perm[x] predicts person x exactly (mask logits +-8, human logit +4); the rest predict nothing."""
    b, _, h, w = gt.shape
    masks = torch.full((b, n, h, w), -8.0)
    logits = torch.tensor([4.0, -4.0]).repeat(b, n, 1)
    for x, i in enumerate(perm):
        masks[:, i] = 16.0 * gt[:, x] - 8.0
        logits[:, i] = torch.tensor([-4.0, 4.0])
    return {"pred_logits": logits, "pred_masks": masks}


def _people(k: int, h: int = 8, w: int = 8) -> torch.Tensor:
    """k disjoint vertical stripes of width 2 (1, k, h, w)."""
    gt = torch.zeros(1, k, h, w)
    for x in range(k):
        gt[0, x, :, 2 * x : 2 * x + 2] = 1.0
    return gt


@pytest.mark.parametrize("num_points", [None, 64])
def test_finds_known_permutation(num_points):
    torch.manual_seed(0)
    gt = _people(3)
    perm = [4, 0, 2]  # person x is predicted by query perm[x]
    out = _clear_predictions(gt, perm, n=5)
    ((q, t),) = HungarianMatcher(num_points=num_points)(out, gt, torch.ones(1, 3, dtype=torch.bool))
    assert dict(zip(t.tolist(), q.tolist())) == {0: 4, 1: 0, 2: 2}
    assert q.tolist() == sorted(q.tolist())


def test_ground_truth_downsampled_to_prediction_size():
    gt = _people(2, 16, 16)  # stripes of width 2 at 16x16 -> width 1 at 8x8 (area 1 -> kept by >= 0.5)
    low = torch.nn.functional.avg_pool2d(gt, 2)
    out = _clear_predictions(low, [1, 0], n=3)
    m = HungarianMatcher()
    torch.testing.assert_close(m.cost_matrix(out["pred_logits"], out["pred_masks"], gt),
                               m.cost_matrix(out["pred_logits"], out["pred_masks"], low))  # fmt: skip
    ((q, t),) = m(out, gt, torch.ones(1, 2, dtype=torch.bool))
    assert q.tolist() == [0, 1] and t.tolist() == [1, 0]


def test_zero_people_and_padding():
    # image 0: 2 real people + 1 padded slot that a query would fit perfectly; image 1: nobody
    gt = torch.cat([_people(3), torch.zeros(1, 3, 8, 8)])  # (2, 3, 8, 8)
    out = _clear_predictions(_people(3), [1, 0, 2], n=4)
    out = {k: v.expand(2, *v.shape[1:]).clone() for k, v in out.items()}
    valid = torch.tensor([[True, False, True], [False, False, False]])
    (q0, t0), (q1, t1) = HungarianMatcher()(out, gt, valid)
    assert dict(zip(t0.tolist(), q0.tolist())) == {0: 1, 2: 2}  # the padded slot 1 is never used
    assert q1.numel() == 0 and t1.numel() == 0
    assert q1.dtype == torch.int64 and t1.dtype == torch.int64


def test_more_people_than_queries_matches_every_query():
    gt = _people(3)
    out = _clear_predictions(gt[:, :2], [0, 1], n=2)
    ((q, t),) = HungarianMatcher()(out, gt, torch.ones(1, 3, dtype=torch.bool))
    assert q.tolist() == [0, 1] and t.tolist() == [0, 1]


def test_float32_under_autocast_and_no_grad():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 4, 2, generator=g, requires_grad=True)
    masks = torch.randn(1, 4, 4, 4, generator=g, requires_grad=True)
    gt = (torch.rand(1, 2, 4, 4, generator=g) > 0.5).float()
    m = HungarianMatcher()
    ref = m.cost_matrix(logits, masks, gt)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cost = m.cost_matrix(logits.bfloat16(), masks.bfloat16(), gt.bfloat16())
    assert cost.dtype == torch.float32 and not cost.requires_grad
    torch.testing.assert_close(cost, ref, rtol=0.05, atol=0.05)  # inputs were rounded to bf16, not the math


def test_non_finite_cost_is_reported():
    out = {"pred_logits": torch.full((1, 2, 2), float("nan")), "pred_masks": torch.zeros(1, 2, 2, 2)}
    with pytest.raises(ValueError, match="not finite"):
        HungarianMatcher()(out, torch.ones(1, 1, 2, 2), torch.ones(1, 1, dtype=torch.bool))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_points"):
        HungarianMatcher(num_points=0)
    with pytest.raises(ValueError, match="mask_target"):
        HungarianMatcher(mask_target="fuzzy")
