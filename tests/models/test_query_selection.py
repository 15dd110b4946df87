"""Inference economy: decoding only the queries that can pass the class threshold changes none of their
numbers, for both network layouts (models/query_selection.py)."""

from __future__ import annotations

import pytest
import torch
from model_builders import build_small_net

from e2e_him.models.inference import postprocess
from e2e_him.models.query_selection import gather_queries, scatter_queries, select_queries


def test_select_takes_the_top_k_of_the_batch():
    logits = torch.tensor([[[0.0, 3.0], [0.0, -3.0], [0.0, 1.0]], [[0.0, -2.0], [0.0, -1.0], [0.0, -3.0]]])
    select = select_queries(logits, 0.5)  # image 0: queries 0 and 2 pass; image 1: none -> K = 2 for both
    assert select.shape == (2, 2) and set(select[0].tolist()) == {0, 2} and select[1].tolist()[0] == 1
    x = torch.arange(2 * 3 * 4.0).view(2, 3, 4)
    back = scatter_queries(gather_queries(x, select), select, 3)
    assert torch.equal(back[0, [0, 2]], x[0, [0, 2]]) and torch.equal(back[0, 1], torch.zeros(4))


def test_scatter_leaves_no_uninitialised_slot(monkeypatch):
    # deterministic mode fills new uninitialised tensors with NaN: a slot left unwritten would show
    monkeypatch.setattr(torch.utils.deterministic, "fill_uninitialized_memory", True)
    torch.use_deterministic_algorithms(True)
    try:
        x = torch.randn(2, 5, 3, 4)
        select = torch.stack([torch.randperm(5) for _ in range(2)])  # K = N: the output is left unfilled
        assert torch.equal(scatter_queries(gather_queries(x, select), select, 5), x)
        some = torch.tensor([[3, 1], [0, 4]])  # K < N: zeros elsewhere
        back = scatter_queries(gather_queries(x, some), some, 5)
        assert torch.equal(back[0, [3, 1]], x[0, [3, 1]]) and not back[0, [0, 2, 4]].any()
        repeated = torch.tensor([[0, 0, 1, 2, 3], [4, 3, 2, 1, 0]])  # K = N, query 4 of row 0 not selected
        back = scatter_queries(gather_queries(x, repeated), repeated, 5)
        assert not back[0, 4].any() and torch.equal(back[1], x[1])
    finally:
        torch.use_deterministic_algorithms(False)


@torch.no_grad()
@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.99])
def test_paper_layout_kept_queries_are_unchanged(threshold: float):
    net = build_small_net("resnet18", perception={"num_queries": 6}).eval()
    torch.manual_seed(1)
    image = torch.randn(2, 3, 64, 96)
    full, cheap = net(image), net(image, keep_scores_above=threshold)
    assert torch.equal(full["pred_logits"], cheap["pred_logits"])
    select = select_queries(full["pred_logits"], threshold)
    for key in ("trimap_logits", "alpha_pred", "alpha_fin"):
        torch.testing.assert_close(gather_queries(cheap[key], select), gather_queries(full[key], select))
        others = torch.ones(full[key].shape[:2], dtype=torch.bool).scatter(1, select, False)
        assert not cheap[key][others].any()
    metas = [{"orig_size": (64, 96), "input_size": (64, 96)}] * 2
    for a, b in zip(postprocess(full, metas, threshold, 0.0), postprocess(cheap, metas, threshold, 0.0)):
        assert torch.equal(a["query_index"], b["query_index"])
        torch.testing.assert_close(a["alphas"], b["alphas"])


@pytest.mark.slow
@torch.no_grad()
def test_released_layout_kept_queries_are_unchanged():
    from e2e_him.models.release.convert import build_release_module, release_run_config

    torch.manual_seed(0)
    net = build_release_module(release_run_config()).net.eval()
    image = torch.randn(1, 3, 64, 64)
    full, cheap = net(image), net(image, keep_scores_above=0.55)
    select = select_queries(full["pred_logits"], 0.55)
    assert select.shape[1] < net.num_queries  # some queries skipped
    for key in ("trimap_logits", "alpha_raw", "alpha_fin"):
        torch.testing.assert_close(gather_queries(cheap[key], select), gather_queries(full[key], select))
