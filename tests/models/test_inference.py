"""postprocess: score threshold, minimum area, order, crop of the padded input, resize to the photo's size."""

from __future__ import annotations

import math

import pytest
import torch

from e2e_him.metrics import IMQMetric
from e2e_him.models.inference import postprocess, quantise_alphas


def _logits(p_human: list[list[float]]) -> torch.Tensor:
    """Class logits (B, N, 2) whose softmax gives these p(human): logit_1 - logit_0 = log(p / (1 - p))."""
    p = torch.tensor(p_human)
    return torch.stack((torch.zeros_like(p), torch.log(p / (1 - p))), dim=-1)


def test_threshold_area_and_order():
    # 4 queries on a 40x50 input that is the whole photo; query alphas are constant maps.
    alpha = torch.zeros(1, 4, 40, 50)
    alpha[0, 0] = 0.9  # p 0.7, area 0.9 * 2000 = 1800: kept
    alpha[0, 1] = 1.0  # p 0.4 <= 0.5: dropped
    alpha[0, 2, :10, :10] = 1.0  # p 0.95, area 100 <= 1000: dropped
    alpha[0, 3, :, :25] = 1.0  # p 0.8, area 1000: dropped (must exceed 1000)
    outputs = {"pred_logits": _logits([[0.7, 0.4, 0.95, 0.8]]), "alpha_fin": alpha}
    metas = [{"orig_size": (40, 50), "input_size": (40, 50)}]
    (result,) = postprocess(outputs, metas)
    assert result["query_index"].tolist() == [0]
    assert result["alphas"].shape == (1, 40, 50)
    torch.testing.assert_close(result["scores"], torch.tensor([0.7]))
    # a lower area bar keeps query 3 (area 1000 > 999) and puts it first (0.8 > 0.7)
    (result,) = postprocess(outputs, metas, min_area=999)
    assert result["query_index"].tolist() == [3, 0]
    torch.testing.assert_close(result["scores"], torch.tensor([0.8, 0.7]))
    # a higher threshold keeps only query 3 (0.8 > 0.75)
    (result,) = postprocess(outputs, metas, score_threshold=0.75, min_area=999)
    assert result["query_index"].tolist() == [3]


def test_crop_then_resize_to_the_original_size():
    # The photo (60x90) was resized to 32x48 and padded to 64x64; the padding holds garbage that must go.
    alpha = torch.ones(1, 1, 64, 64)
    alpha[0, 0, :32, :48] = 0.0
    alpha[0, 0, :16, :48] = 1.0  # top half of the photo is the person
    outputs = {"pred_logits": _logits([[0.9]]), "alpha_fin": alpha}
    metas = [{"orig_size": torch.tensor([60, 90]), "input_size": [32, 48]}]
    (result,) = postprocess(outputs, metas, min_area=0)
    assert result["alphas"].shape == (1, 60, 90)
    # rows 0-15 of 32 are 1: after the 32 -> 60 resize, row r samples source (r + 0.5) * 32 / 60 - 0.5;
    # rows up to 28 sample <= 14.7 (value 1), rows from 31 sample >= 16.03 (value 0); the padding is gone
    a = result["alphas"][0]
    assert torch.all(a[:28] == 1) and torch.all(a[31:] == 0)
    # total: 29 full rows plus the two blended rows 29 and 30 (interpolation between 1 and 0, summing to 1)
    assert math.isclose(a.sum().item(), 90 * 30, rel_tol=1e-5)


def test_batch_and_empty_results():
    alpha = torch.rand(2, 3, 32, 32)
    outputs = {"pred_logits": _logits([[0.1, 0.2, 0.3], [0.9, 0.9, 0.1]]), "alpha_fin": alpha}
    metas = [{"orig_size": (40, 40), "input_size": (32, 32)}, {"orig_size": (32, 32), "input_size": (32, 32)}]
    first, second = postprocess(outputs, metas, min_area=0)
    assert first["alphas"].shape == (0, 40, 40) and first["scores"].shape == (0,)
    assert first["query_index"].dtype == torch.int64
    assert sorted(second["query_index"].tolist()) == [0, 1]
    torch.testing.assert_close(second["alphas"][0], alpha[1, second["query_index"][0]])


def test_mismatched_metas_are_an_error():
    outputs = {"pred_logits": torch.zeros(2, 1, 2), "alpha_fin": torch.zeros(2, 1, 32, 32)}
    with pytest.raises(ValueError, match="metas"):
        postprocess(outputs, [{"orig_size": (32, 32), "input_size": (32, 32)}])
    with pytest.raises(ValueError, match="orig_size"):
        postprocess({k: v[:1] for k, v in outputs.items()}, [{"orig_size": 32, "input_size": (32, 32)}])


def test_alpha_levels_score_the_mattes_as_8_bit_pngs_hold_them():
    # a person in the left half; the network leaves a faint 1e-3 alpha (0.26 of an 8-bit step) on the right
    alpha = torch.zeros(1, 1, 32, 32)
    alpha[0, 0, :, :16] = 0.8
    alpha[0, 0, :, 16:] = 1e-3
    alpha[0, 0, 0, 0] = 0.5 / 255 + 1e-6  # just above half a step: rounds up to 1 / 255
    outputs = {"pred_logits": _logits([[0.9]]), "alpha_fin": alpha}
    metas = [{"orig_size": (32, 32), "input_size": (32, 32)}]
    (floats,) = postprocess(outputs, metas, min_area=0)
    (written,) = postprocess(outputs, metas, min_area=0, alpha_levels=255)
    assert torch.equal(floats["alphas"], alpha[0].float())
    a = written["alphas"][0]
    assert torch.all(a[:, 16:] == 0)  # what a PNG stores: 0
    assert a[0, 0] == 1 / 255 and torch.allclose(a[1:, :16], torch.full((31, 16), 204 / 255))
    assert torch.equal(quantise_alphas(a), a)  # already on the 8-bit grid
    # InstMatt's IMQ binarises at alpha > 0: the float matte covers the whole image (IoU 0.5 with the person,
    # no match at 0.75), the written one exactly the person
    gt = torch.zeros(1, 32, 32)
    gt[0, :, :16] = 1.0
    rq = {}
    for name, pred in (("float", floats), ("8-bit", written)):
        metric = IMQMetric(iou_thresholds=(0.5, 0.75))
        metric.update([pred["alphas"]], [gt])
        rq[name] = float(metric.compute()["RQ_0.75"])
    assert rq == {"float": 0.0, "8-bit": 1.0}
