"""SetCriterion (Eq. 13-19): a hand-computed total, empty and padded batches, gradients, deep supervision."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import e2e_him.losses.criterion as criterion_module
from e2e_him.data.trimap import trimap_from_alpha
from e2e_him.losses import HungarianMatcher, SetCriterion, downsample_masks

LN2, LN3, LN43 = math.log(2.0), math.log(3.0), math.log(4.0 / 3.0)
TERMS = (
    "loss", "loss_cls", "loss_focal", "loss_dice", "loss_seg", "loss_perception", "loss_tri", "loss_alpha_pu",
    "loss_alpha_gu", "loss_alpha", "loss_matting", "loss_cls_aux", "loss_focal_aux", "loss_dice_aux",
)  # fmt: skip


def hand_case() -> tuple[dict, dict]:
    """One image 8x8, two queries, one person; query 1 is the match.

    Ground truth: alpha = 1 on rows 0-3, 0.5 on rows 4-7 -> mask all ones (1x1 at H/8 -> 1);
    trimap given by hand: rows 0-3 foreground, rows 4-7 unknown -> at 4x4: rows 0-1 fg, rows 2-3 unknown.
    """
    alpha = torch.ones(1, 1, 8, 8)
    alpha[..., 4:, :] = 0.5
    trimap = torch.full((1, 1, 8, 8), 2)
    trimap[..., 4:, :] = 1
    batch = {
        "alphas": alpha,
        "masks": torch.ones(1, 1, 8, 8),
        "trimaps": trimap,
        "labels": torch.ones(1, 1, dtype=torch.long),
        "valid": torch.ones(1, 1, dtype=torch.bool),
    }
    tri = torch.zeros(1, 2, 3, 4, 4)
    tri[0, 0] = torch.randn(3, 4, 4)  # unmatched query: must not contribute
    tri[0, 1, 2, :2] = LN2  # rows 0-1: predicted foreground, softmax (1/4, 1/4, 1/2)
    tri[0, 1, 1, 2:] = LN2  # rows 2-3: predicted unknown, softmax (1/4, 1/2, 1/4)
    tri[0, 1, 2, 0, 0], tri[0, 1, 1, 0, 0] = 0.0, LN2  # low-res pixel (0, 0): unknown predicted, fg in truth
    alpha_pred = torch.rand(1, 2, 8, 8)
    alpha_pred[0, 1] = 0.25
    outputs = {
        "pred_logits": torch.tensor([[[0.0, 0.0], [0.0, LN3]]]),
        "pred_masks": torch.tensor([-5.0, 0.0]).view(1, 2, 1, 1),
        "trimap_logits": tri,
        "alpha_pred": alpha_pred,
    }
    return outputs, batch


def test_total_by_hand():
    outputs, batch = hand_case()
    crit = SetCriterion()
    losses, indices = crit.losses_and_indices(outputs, batch)
    assert [(q.tolist(), t.tolist()) for q, t in indices] == [([1], [0])]
    assert set(TERMS) <= set(losses)
    assert all(v.ndim == 0 for v in losses.values())
    # L_cls (Eq. 14, / N = 2): q0 background, logits (0, 0): 0.1 * ln 2; q1 human, p = 3/4: 1 * ln(4/3)
    cls = (0.1 * LN2 + LN43) / 2
    # one pixel at H/8, p = 1/2, target 1: focal = 0.25 * (1/2)^2 * ln 2;
    # dice = 1 - (2*0.5 + 1)/(0.5 + 1 + 1) = 0.2
    focal, dice = LN2 / 16, 0.2
    # trimap at 4x4: 15 pixels with p_t = 1/2 -> (1/2)^2 ln 2 = ln2/4;
    # pixel (0, 0) has p_t(fg) = 1/4 -> (3/4)^2 ln 4; mean over 16 pixels
    tri = (15 * LN2 / 4 + 9 / 16 * 2 * LN2) / 16
    # U_pred at 8x8: rows 4-7 (32 px, |0.25 - 0.5| = 0.25) + the 2x2 block at (0, 0) (4 px, |0.25 - 1| = 0.75)
    pu = (32 * 0.25 + 4 * 0.75) / 36
    gu = (32 * 0.25) / 32  # U_sort = rows 4-7
    expected = {
        "loss_cls": cls,
        "loss_focal": focal,
        "loss_dice": dice,
        "loss_seg": 0.1 * focal + dice,
        "loss_perception": 5 * cls + 0.1 * focal + dice,
        "loss_tri": tri,
        "loss_alpha_pu": pu,
        "loss_alpha_gu": gu,
        "loss_alpha": 3 * pu + 5 * gu,
        "loss_matting": 10 * tri + 5 * (3 * pu + 5 * gu),
        "loss": 5 * cls + 0.1 * focal + dice + 10 * tri + 5 * (3 * pu + 5 * gu),
        "loss_cls_aux": 0.0,
    }
    for k, v in expected.items():
        assert losses[k].item() == pytest.approx(v, rel=1e-5, abs=1e-7), k


def test_coefficients_are_arguments():
    outputs, batch = hand_case()
    base = SetCriterion()(outputs, batch)
    lam = dict(lambda_c=1.0, lambda_s=2.0, lambda_b=0.5, lambda_d=3.0, lambda_t=4.0, lambda_alpha=0.5,
               lambda_pu=7.0, lambda_gu=11.0, lambda_p=0.25, lambda_m=2.0)  # fmt: skip
    got = SetCriterion(**lam)(outputs, batch)
    for k in ("loss_cls", "loss_focal", "loss_dice", "loss_tri", "loss_alpha_pu", "loss_alpha_gu"):
        torch.testing.assert_close(got[k], base[k])
    seg = 0.5 * base["loss_focal"] + 3.0 * base["loss_dice"]
    alpha = 7.0 * base["loss_alpha_pu"] + 11.0 * base["loss_alpha_gu"]
    total = 0.25 * (1.0 * base["loss_cls"] + 2.0 * seg) + 2.0 * (4.0 * base["loss_tri"] + 0.5 * alpha)
    torch.testing.assert_close(got["loss"], total)


def test_background_weight_and_normalisation():
    outputs, batch = hand_case()
    # background weight 0.5: (0.5 ln 2 + ln(4/3)) / 2
    got = SetCriterion(background_weight=0.5)(outputs, batch)["loss_cls"]
    assert got.item() == pytest.approx((0.5 * LN2 + LN43) / 2, rel=1e-6)
    # human weight 2, weight-sum normalisation: (0.1 ln 2 + 2 ln(4/3)) / (0.1 + 2)
    got = SetCriterion(human_weight=2.0, cls_normalization="weight_sum")(outputs, batch)["loss_cls"]
    assert got.item() == pytest.approx((0.1 * LN2 + 2 * LN43) / 2.1, rel=1e-6)


def random_case(b=2, n=5, k=3, size=32, valid=((1, 1, 0), (1, 0, 0)), aux_layers=2, seed=0):
    """Random outputs (leaf tensors with grad) and a padded batch with blobs of soft alpha."""
    g = torch.Generator().manual_seed(seed)
    h8, h2 = size // 8, size // 2

    def leaf(*shape, fn=torch.randn):
        return fn(*shape, generator=g).requires_grad_(True)

    outputs = {
        "pred_logits": leaf(b, n, 2),
        "pred_masks": leaf(b, n, h8, h8),
        "trimap_logits": leaf(b, n, 3, h2, h2),
        "alpha_pred": leaf(b, n, size, size, fn=torch.rand),
        "aux_outputs": [
            {"pred_logits": leaf(b, n, 2), "pred_masks": leaf(b, n, h8, h8)} for _ in range(aux_layers)
        ],
    }
    alphas = torch.zeros(b, k, size, size)
    for i in range(b):
        for j in range(k):
            y, x = (torch.randint(0, size // 2, (2,), generator=g)).tolist()
            alphas[i, j, y : y + size // 2, x : x + size // 2] = 1.0
            alphas[i, j, y + size // 2 - 2 : y + size // 2, x : x + size // 2] = 0.5
    valid_t = torch.tensor(valid, dtype=torch.bool)
    alphas = alphas * valid_t[:, :, None, None]
    batch = {
        "alphas": alphas,
        "masks": (alphas >= 0.5).float(),
        "trimaps": trimap_from_alpha(alphas, 3),
        "labels": valid_t.long(),
        "valid": valid_t,
        "num_instances": valid_t.sum(1),
    }
    return outputs, batch


@pytest.mark.parametrize("num_points", [None, 12])
def test_gradients_reach_every_output(num_points):
    outputs, batch = random_case()
    losses = SetCriterion(num_points=num_points)(outputs, batch)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    for key in ("pred_logits", "pred_masks", "trimap_logits", "alpha_pred"):
        grad = outputs[key].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, key
    for layer in outputs["aux_outputs"]:
        assert layer["pred_logits"].grad.abs().sum() > 0 and layer["pred_masks"].grad.abs().sum() > 0


def test_only_matched_queries_get_matting_gradients():
    outputs, batch = random_case()
    crit = SetCriterion()
    losses, indices = crit.losses_and_indices(outputs, batch)
    losses["loss"].backward()
    for i, (q, _) in enumerate(indices):
        unmatched = torch.ones(outputs["alpha_pred"].shape[1], dtype=torch.bool)
        unmatched[q] = False
        assert outputs["trimap_logits"].grad[i, unmatched].abs().sum() == 0
        assert outputs["alpha_pred"].grad[i, unmatched].abs().sum() == 0


def test_losses_and_indices_give_the_loss_and_the_assignment_it_used():
    outputs, batch = random_case()
    crit = SetCriterion()
    losses, indices = crit.losses_and_indices(outputs, batch)
    assert {k: float(v) for k, v in losses.items()} == {k: float(v) for k, v in crit(outputs, batch).items()}
    gt_low = downsample_masks(batch["masks"], tuple(outputs["pred_masks"].shape[-2:]), crit.mask_target)
    expected = crit.matcher(outputs, gt_low, batch["valid"])  # the final layer, matched on its own
    assert len(indices) == len(expected) == batch["valid"].shape[0]
    for (q, t), (q0, t0) in zip(indices, expected):
        assert torch.equal(q, q0) and torch.equal(t, t0)


def test_all_background_batch_is_finite():
    outputs, batch = random_case(valid=((0, 0, 0), (0, 0, 0)))
    losses = SetCriterion()(outputs, batch)
    for k, v in losses.items():
        assert torch.isfinite(v), k
    for k in ("loss_focal", "loss_dice", "loss_tri", "loss_alpha_pu", "loss_alpha_gu", "loss_matting"):
        assert losses[k].item() == 0.0, k
    assert losses["loss_cls"] > 0  # every query is trained as background
    losses["loss"].backward()
    assert outputs["pred_logits"].grad.abs().sum() > 0
    assert torch.isfinite(outputs["alpha_pred"].grad).all()


def test_empty_unknown_regions_are_finite():
    outputs, batch = random_case()
    batch["trimaps"] = torch.where(batch["masks"] > 0, 2, 0)  # no unknown pixel anywhere
    with torch.no_grad():
        outputs["trimap_logits"][:, :, 2] = 10.0  # no pixel predicted unknown either
    losses = SetCriterion()(outputs, batch)
    assert losses["loss_alpha_pu"].item() == 0.0 and losses["loss_alpha_gu"].item() == 0.0
    assert all(torch.isfinite(v) for v in losses.values())


def test_padding_does_not_change_the_loss():
    outputs, batch = random_case(k=2, valid=((1, 1), (1, 0)))
    padded = {k: v for k, v in batch.items()}
    extra = torch.rand(2, 2, 32, 32)  # garbage in the padded slots: must be ignored
    padded["alphas"] = torch.cat([batch["alphas"], extra], 1)
    padded["masks"] = torch.cat([batch["masks"], (extra > 0.5).float()], 1)
    padded["trimaps"] = torch.cat([batch["trimaps"], trimap_from_alpha(extra, 3)], 1)
    padded["labels"] = torch.cat([batch["labels"], torch.ones(2, 2, dtype=torch.long)], 1)
    padded["valid"] = torch.cat([batch["valid"], torch.zeros(2, 2, dtype=torch.bool)], 1)
    crit = SetCriterion()
    a, b = crit(outputs, batch), crit(outputs, padded)
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def test_deep_supervision_adds_aux_terms_and_can_be_switched_off():
    outputs, batch = random_case(aux_layers=0)
    final = {"pred_logits": outputs["pred_logits"], "pred_masks": outputs["pred_masks"]}
    outputs["aux_outputs"] = [copy.deepcopy(final), copy.deepcopy(final)]  # two layers equal to the final one
    on = SetCriterion()(outputs, batch)
    for k in ("loss_cls", "loss_focal", "loss_dice", "loss_perception"):
        torch.testing.assert_close(on[f"{k}_aux"], 2 * on[k])
    off = SetCriterion(deep_supervision=False)(outputs, batch)
    assert off["loss_cls_aux"].item() == 0.0 and off["loss_perception_aux"].item() == 0.0
    torch.testing.assert_close(on["loss"], off["loss"] + 2 * off["loss_perception"])
    no_aux = SetCriterion()({k: v for k, v in outputs.items() if k != "aux_outputs"}, batch)
    torch.testing.assert_close(no_aux["loss"], off["loss"])


def test_normaliser_all_reduced_under_ddp(monkeypatch):
    valid = torch.tensor([[True, True, False], [True, False, False]])
    assert SetCriterion.num_people(valid).item() == 3.0
    assert SetCriterion.num_people(torch.zeros(2, 3, dtype=torch.bool)).item() == 1.0  # clamped at 1

    def all_reduce(t):  # 4 processes: the others hold 1, 2 and 6 people -> sum 12
        t.add_(9.0)

    monkeypatch.setattr(criterion_module.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(criterion_module.dist, "all_reduce", all_reduce)
    monkeypatch.setattr(criterion_module.dist, "get_world_size", lambda: 4)
    assert SetCriterion.num_people(valid).item() == 3.0  # 12 / 4


def test_losses_in_float32_under_autocast():
    outputs, batch = random_case()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = {k: (v.bfloat16() if torch.is_tensor(v) else v) for k, v in outputs.items()}
        losses = SetCriterion(deep_supervision=False)(half, batch)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


def test_alpha_size_mismatch_names_the_keys():
    outputs, batch = random_case()
    outputs["alpha_pred"] = outputs["alpha_pred"][..., :16, :16]
    with pytest.raises(ValueError, match="alpha_pred"):
        SetCriterion()(outputs, batch)


def test_builds_from_the_proposed_hydra_config():
    cfg = OmegaConf.create(
        {
            "_target_": "e2e_him.losses.SetCriterion",
            "matcher": {"cost_class": 1.0, "cost_focal": 1.0, "cost_dice": 1.0},
            "lambda_c": 5.0, "lambda_s": 1.0, "lambda_b": 0.1, "lambda_d": 1.0, "lambda_t": 10.0,
            "lambda_alpha": 5.0, "lambda_pu": 3.0, "lambda_gu": 5.0, "lambda_p": 1.0, "lambda_m": 1.0,
            "background_weight": 0.1, "human_weight": 1.0, "cls_normalization": "num_queries",
            "deep_supervision": True, "num_points": None,
        }
    )  # fmt: skip
    crit = instantiate(cfg)
    assert isinstance(crit, SetCriterion) and isinstance(crit.matcher, HungarianMatcher)
    outputs, batch = hand_case()
    torch.testing.assert_close(crit(outputs, batch)["loss"], SetCriterion()(outputs, batch)["loss"])


def test_the_matcher_reads_the_criterions_settings():
    """One set of values (conf/model/recipe/paper.yaml sets each once): the matcher's focal, point and
    mask-target settings are the criterion's, its cost weights its own."""
    crit = SetCriterion(
        matcher={"cost_dice": 2.0}, focal_alpha=0.5, focal_gamma=1.0, num_points=64, mask_target="soft"
    )
    m = crit.matcher
    assert (m.cost_class, m.cost_focal, m.cost_dice) == (1.0, 1.0, 2.0)
    assert (m.focal_alpha, m.focal_gamma, m.num_points, m.mask_target) == (0.5, 1.0, 64, "soft")
    assert (crit.focal_alpha, crit.focal_gamma, crit.num_points, crit.mask_target) == (0.5, 1.0, 64, "soft")
    with pytest.raises(ValueError, match=r"unknown cost weight\(s\) \['focal_alpha'\]"):
        SetCriterion(matcher={"focal_alpha": 0.5})


def test_bad_arguments():
    with pytest.raises(ValueError, match="cls_normalization"):
        SetCriterion(cls_normalization="mean")
    with pytest.raises(ValueError, match="mask_target"):
        SetCriterion(mask_target="fuzzy")
