"""Each loss / cost function against values worked out by hand (arithmetic in the comments)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from e2e_him.losses import (
    class_cost,
    dice_cost,
    dice_loss,
    downsample_masks,
    downsample_trimaps,
    focal_bce_cost,
    focal_bce_loss,
    focal_cross_entropy,
    point_sample,
    predicted_unknown,
    region_l1,
    uncertain_point_coords,
    weighted_cross_entropy,
)

LN2, LN3, LN43 = math.log(2.0), math.log(3.0), math.log(4.0 / 3.0)


def direct_focal_bce(x: torch.Tensor, t: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """-alpha_t (1 - p_t)^gamma log p_t written out, mean over the last axis."""
    p = torch.sigmoid(x.double())
    t = t.double()
    p_t = p * t + (1 - p) * (1 - t)
    a_t = alpha * t + (1 - alpha) * (1 - t)
    return (-a_t * (1 - p_t) ** gamma * torch.log(p_t)).mean(-1)


def test_focal_bce_by_hand():
    # pixel 1: logit 0 -> p = 1/2, target 1: 0.25 * (1/2)^2 * ln 2 = 0.0625 ln 2
    # pixel 2: logit ln 3 -> p = 3/4, target 0: 0.75 * (3/4)^2 * ln 4 = 0.421875 * 2 ln 2 = 0.84375 ln 2
    # mean over 2 pixels: (0.0625 + 0.84375) ln 2 / 2 = 0.453125 ln 2
    loss = focal_bce_loss(torch.tensor([[0.0, LN3]]), torch.tensor([[1.0, 0.0]]))
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(0.453125 * LN2, rel=1e-6)


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.5, 0.0), (0.75, 1.5)])
def test_focal_bce_matches_direct_formula(alpha, gamma):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 17, generator=g) * 3
    t = (torch.rand(3, 17, generator=g) > 0.5).float()
    got = focal_bce_loss(x, t, alpha=alpha, gamma=gamma)
    torch.testing.assert_close(got.double(), direct_focal_bce(x, t, alpha, gamma), rtol=1e-5, atol=1e-7)


def test_focal_bce_cost_equals_pairwise_loss():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 10, generator=g)  # (B, N, P)
    t = (torch.rand(2, 3, 10, generator=g) > 0.5).float()  # (B, K, P)
    cost = focal_bce_cost(x, t)
    assert cost.shape == (2, 4, 3)
    for b in range(2):
        for n in range(4):
            for k in range(3):
                ref = focal_bce_loss(x[b, n : n + 1], t[b, k : k + 1])[0]
                assert cost[b, n, k].item() == pytest.approx(ref.item(), rel=1e-5)


def test_dice_by_hand():
    # p = 1/2 on 4 pixels, target (1, 1, 0, 0): inter = 1, sum p = 2, sum t = 2
    # -> 1 - (2 + 1) / (2 + 2 + 1) = 0.4
    loss = dice_loss(torch.zeros(1, 4), torch.tensor([[1.0, 1.0, 0.0, 0.0]]))
    assert loss.item() == pytest.approx(0.4)
    # empty prediction and empty target: 1 - (0 + 1) / (0 + 0 + 1) = 0, finite
    assert dice_loss(torch.full((1, 4), -1e4), torch.zeros(1, 4)).item() == pytest.approx(0.0, abs=1e-6)


def test_dice_cost_equals_pairwise_loss():
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(5, 9, generator=g), (torch.rand(3, 9, generator=g) > 0.5).float()
    cost = dice_cost(x, t)
    ref = torch.stack([dice_loss(x, t[k].expand(5, -1)) for k in range(3)], dim=1)
    torch.testing.assert_close(cost, ref)


def test_class_cost_is_minus_human_probability():
    # softmax(0, ln 3) = (1/4, 3/4): cost -3/4 (Eq. 10); softmax(0, 0) -> -1/2
    cost = class_cost(torch.tensor([[0.0, LN3], [0.0, 0.0]]))
    torch.testing.assert_close(cost, torch.tensor([[-0.75], [-0.5]]))


def test_weighted_cross_entropy_by_hand():
    # query 0: logits (0, 0), background: CE = ln 2, weight 0.1
    # query 1: logits (0, ln 3), human: p = 3/4, CE = ln(4/3), weight 1
    logits = torch.tensor([[[0.0, 0.0], [0.0, LN3]]])
    targets = torch.tensor([[0, 1]])
    w = torch.tensor([0.1, 1.0])
    # Eq. 14 as written: divide by N = 2
    got = weighted_cross_entropy(logits, targets, w, "num_queries")
    assert got.item() == pytest.approx((0.1 * LN2 + LN43) / 2, rel=1e-6)
    # torch's weighted mean: divide by the weight sum 1.1
    got = weighted_cross_entropy(logits, targets, w, "weight_sum")
    assert got.item() == pytest.approx((0.1 * LN2 + LN43) / 1.1, rel=1e-6)
    torch.testing.assert_close(got, F.cross_entropy(logits[0], targets[0], weight=w))
    with pytest.raises(ValueError, match="normalization"):
        weighted_cross_entropy(logits, targets, w, "mean")


def test_focal_cross_entropy_by_hand():
    # pixel 1: logits (0, 0, 0), target 1: p_t = 1/3 -> (2/3)^2 ln 3 = 4/9 ln 3
    # pixel 2: logits (ln 2, 0, 0) -> softmax (1/2, 1/4, 1/4), target 0: p_t = 1/2 -> (1/2)^2 ln 2 = ln 2 / 4
    logits = torch.tensor([[[0.0, LN2]], [[0.0, 0.0]], [[0.0, 0.0]]]).unsqueeze(0)  # (1, 3, 1, 2)
    target = torch.tensor([[[1, 0]]])
    got = focal_cross_entropy(logits, target, gamma=2.0)
    assert got.shape == (1,)
    assert got.item() == pytest.approx((4 / 9 * LN3 + LN2 / 4) / 2, rel=1e-6)
    # gamma = 0 is plain cross entropy
    torch.testing.assert_close(
        focal_cross_entropy(logits, target, gamma=0.0)[0], F.cross_entropy(logits, target)
    )
    # per-class factors multiply each pixel: target classes 1 and 0 with factors 2 and 3
    weighted = focal_cross_entropy(logits, target, gamma=2.0, class_weights=torch.tensor([3.0, 2.0, 1.0]))
    assert weighted.item() == pytest.approx((2 * 4 / 9 * LN3 + 3 * LN2 / 4) / 2, rel=1e-6)
    # no maps: empty result
    assert focal_cross_entropy(torch.zeros(0, 3, 2, 2), torch.zeros(0, 2, 2, dtype=torch.long)).shape == (0,)


def test_region_l1_by_hand_and_empty():
    pred = torch.tensor([[[0.2, 0.5], [1.0, 0.0]]])
    target = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])
    region = torch.tensor([[[True, True], [False, False]]])
    # |0.2 - 0| + |0.5 - 1| = 0.7 over 2 pixels
    assert region_l1(pred, target, region).item() == pytest.approx(0.35)
    empty = region_l1(pred, target, torch.zeros_like(region))
    assert empty.item() == 0.0
    assert (
        region_l1(torch.zeros(0, 2, 2), torch.zeros(0, 2, 2), torch.zeros(0, 2, 2, dtype=torch.bool)).item()
        == 0
    )


def test_downsample_masks_area_then_threshold():
    # 4x4 -> 2x2: the 2x2 cells are covered 3/4, 1/4, 2/4 and 0
    m = torch.tensor(
        [[1, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]],
        dtype=torch.float32,
    )[None, None]
    torch.testing.assert_close(
        downsample_masks(m, (2, 2), "soft")[0, 0], torch.tensor([[0.75, 0.25], [0.5, 0.0]])
    )
    torch.testing.assert_close(
        downsample_masks(m, (2, 2), "binary")[0, 0], torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    )
    assert downsample_masks(torch.zeros(2, 0, 8, 8), (2, 2)).shape == (2, 0, 2, 2)
    with pytest.raises(ValueError, match="mask target"):
        downsample_masks(m, (2, 2), "nearest")


def test_downsample_trimaps_keeps_thin_unknown_bands():
    # 2x2 cells: all fg -> fg; all bg -> bg; one unknown pixel -> unknown; fg next to bg -> unknown
    t = torch.tensor([[2, 2, 0, 0], [2, 2, 0, 1], [2, 2, 0, 0], [2, 0, 0, 0]])[None]
    got = downsample_trimaps(t, (2, 2))
    assert got.dtype == torch.int64
    torch.testing.assert_close(got[0], torch.tensor([[2, 1], [1, 0]]))
    # nearest sampling would have lost the unknown pixel at (1, 3)
    nearest = F.interpolate(t[None].float(), size=(2, 2), mode="nearest")[0, 0]
    assert nearest[0, 1] == 0
    # a one-pixel-wide unknown column survives at half resolution
    band = torch.full((1, 8, 8), 2)
    band[:, :, 5:] = 0
    band[:, :, 4] = 1
    assert (downsample_trimaps(band, (4, 4))[0, :, 2] == 1).all()


def test_predicted_unknown_nearest_upsampled():
    # argmax per low-res pixel: unknown (1) then foreground (2); 1x2 -> 2x4
    logits = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]]).unsqueeze(-2)  # (1, 3, 1, 2)
    logits.requires_grad_(True)
    got = predicted_unknown(logits, (2, 4))
    assert got.dtype == torch.bool and not got.requires_grad
    torch.testing.assert_close(got[0], torch.tensor([[True, True, False, False]] * 2))
    assert predicted_unknown(torch.zeros(0, 3, 2, 2), (4, 4)).shape == (0, 4, 4)


def test_point_sample_at_pixel_centres():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])[None]  # (1, 1, 2, 2)
    # pixel centres of a 2x2 map are at 0.25 and 0.75; the centre 0.5 averages all four
    coords = torch.tensor([[[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.5, 0.5]]])
    torch.testing.assert_close(point_sample(x, coords), torch.tensor([[[1.0, 2.0, 3.0, 2.5]]]))


def test_uncertain_points_prefer_logits_near_zero():
    torch.manual_seed(0)
    logits = torch.full((2, 1, 8, 8), 10.0)
    logits[..., :4] = 0.0  # left half uncertain
    coords = uncertain_point_coords(logits, num_points=16, oversample_ratio=3, importance_sample_ratio=0.5)
    assert coords.shape == (2, 16, 2)
    assert ((coords >= 0) & (coords <= 1)).all()
    # the 8 importance-sampled points lie where the logit is 0: x below the centre of column 3 (3.5 / 8)
    assert (coords[:, :8, 0] <= 3.5 / 8 + 1e-6).all()
