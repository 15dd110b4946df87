"""Worker statistics enter every metric through its public `update`: counted, never a stale `compute`."""

from __future__ import annotations

import warnings

import pytest
import torch

from e2e_him.metrics import (
    HumanMattingMetrics,
    IMQMetric,
    InstanceMattingMetrics,
    MaggieMetrics,
    human_matting_errors,
    image_errors,
    imq_image_stats,
    match_image,
    merge_people,
)


def _one_matte(gt: torch.Tensor) -> torch.Tensor:
    return gt.sum(0).clamp(0, 1)


# name: (metric, statistics of one image as a worker computes them, target that `update` takes)
CASES = {
    "instance": (InstanceMattingMetrics, lambda p, g: match_image(p, g, 0.5, (0.5, 0.75)), None),
    "imq": (IMQMetric, lambda p, g: imq_image_stats(p, g, (0.5, 0.75), 0.0), None),
    "human": (
        lambda: HumanMattingMetrics(grad_conn=False),
        lambda p, g: human_matting_errors(merge_people(p).numpy(), _one_matte(g).numpy(), False),
        _one_matte,
    ),
    "maggie": (
        lambda: MaggieMetrics(grad_conn=False),
        lambda p, g: image_errors(list(p.numpy()), list(g.numpy()), False),
        None,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_accumulated_statistics_are_counted_and_recomputed(name, two_people):
    make, stats, target = CASES[name]
    gt = two_people["gt"]
    images = [gt.clone(), torch.stack([gt[0], gt[1] * 0.5])]  # perfect, then person B at half strength
    direct, worker = make(), make()
    for pred in images:
        direct.update([pred], [target(gt) if target else gt])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchmetrics warns when `compute` comes before any `update`
        worker.accumulate(stats(images[0], gt))
        first = {k: v.clone() for k, v in worker.compute().items()}
        worker.accumulate(stats(images[1], gt))
        second = worker.compute()  # recomputed, not the cached first result
    assert any(not torch.equal(first[k], second[k]) for k in first)
    expected = direct.compute()
    assert set(second) == set(expected)
    for k, v in second.items():
        assert torch.allclose(v, expected[k]), k
