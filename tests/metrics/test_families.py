"""The metric builder: every family by name, the cheap IMQ (without Grad and Conn) that validation computes,
the full set of the test; configurable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from e2e_him.metrics import (
    METRIC_KINDS,
    HumanMattingMetrics,
    IMQMetric,
    InstanceMattingMetrics,
    LiteIMQMetric,
    MaggieMetrics,
    TemporalMetrics,
    build_metrics,
    validation_kinds,
)
from e2e_him.models.module import E2EHIMModule


def scene(seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Two images: soft people and noisy predictions of them (one missed, one extra)."""
    g = torch.Generator().manual_seed(seed)
    preds, gts = [], []
    for k in (3, 2):
        gt = torch.zeros(k, 48, 64)
        for j in range(k):
            gt[j, 8:40, 4 + 20 * j : 16 + 20 * j] = 1.0
            gt[j, 6:8, 4 + 20 * j : 16 + 20 * j] = 0.5
        pred = gt * (0.9 + 0.1 * torch.rand(gt.shape, generator=g))
        extra = torch.zeros(1, 48, 64)
        extra[:, 40:46, 50:60] = 0.7
        preds.append(torch.cat([pred[1:], extra]))
        gts.append(gt)
    return preds, gts


def test_lite_imq_equals_imq_on_its_keys_without_grad_and_conn():
    full, lite = IMQMetric(), LiteIMQMetric()
    for seed in (0, 1):
        preds, gts = scene(seed)
        full.update(preds, gts)
        lite.update(preds, gts)
    a, b = full.compute(), lite.compute()
    assert set(b) == {k for k in a if "grad" not in k and "conn" not in k}
    assert {"IMQ_mse", "IMQ_mad", "RQ", "MQ_mse", "IMQ_mse_0.75"} <= set(b)
    assert 0.0 < float(b["IMQ_mse"]) < 1.0
    for key, value in b.items():
        assert float(value) == pytest.approx(float(a[key]), abs=1e-12), key


def test_module_validates_cheaply_and_tests_everything_unless_told():
    assert validation_kinds(["instance", "imq", "human"]) == ["instance", "imq_lite", "human"]
    parts = {"net": nn.Identity(), "criterion": nn.Identity(), "optimizer": torch.optim.AdamW}
    module = E2EHIMModule(**parts, metrics=["instance", "imq"])
    assert list(module.val_metrics) == ["instance", "imq_lite"] and list(module.test_metrics) == [
        "instance",
        "imq",
    ]
    full = E2EHIMModule(**parts, metrics=["instance", "imq"], val_metrics=["instance", "imq"])
    assert list(full.val_metrics) == ["instance", "imq"]
    with pytest.raises(ValueError, match="unknown metric kind"):
        build_metrics(["imq_fast"], (0.5,))


def test_the_builder_makes_every_family_with_the_given_settings():
    built = build_metrics(METRIC_KINDS, (0.6,), binarize_threshold=0.3, grad_conn=False, messddt=False)
    assert list(built) == list(METRIC_KINDS)
    kinds = (
        InstanceMattingMetrics,
        IMQMetric,
        LiteIMQMetric,
        HumanMattingMetrics,
        MaggieMetrics,
        TemporalMetrics,
    )
    assert [type(m) for m in built.values()] == list(kinds)
    assert built["instance"].iou_thresholds == (0.6,) and built["instance"].binarize_threshold == 0.3
    assert built["imq"].iou_thresholds == (0.6,) and built["imq"].binarize_threshold == 0.0  # InstMatt's
    assert not built["human"].grad_conn and not built["maggie"].grad_conn
    assert not any(k.startswith("MESSDdt") for k in built["temporal"].keys)
