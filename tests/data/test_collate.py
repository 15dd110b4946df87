"""Batching pads people to Kmax with a valid mask and sizes to the largest (bottom/right)."""

from __future__ import annotations

import pytest
import torch

from e2e_him.data.collate import collate


def _sample(k: int, h: int, w: int, fill: float) -> dict:
    return {
        "image": torch.full((3, h, w), fill),
        "alphas": torch.full((k, h, w), 0.5),
        "masks": torch.ones((k, h, w)),
        "trimaps": torch.full((k, h, w), 2, dtype=torch.long),
        "labels": torch.ones(k, dtype=torch.long),
        "meta": {"name": f"k{k}", "orig_size": (h, w), "input_size": (h, w), "orig_alphas": None},
    }


def test_collate_pads_people_and_sizes():
    batch = collate([_sample(1, 32, 64, 1.0), _sample(3, 64, 32, 2.0), _sample(0, 32, 32, 3.0)])
    assert batch["image"].shape == (3, 3, 64, 64)
    for key in ("alphas", "masks", "trimaps"):
        assert batch[key].shape == (3, 3, 64, 64)
    assert batch["trimaps"].dtype == torch.long and batch["alphas"].dtype == torch.float32
    assert batch["valid"].tolist() == [[True, False, False], [True, True, True], [False, False, False]]
    assert batch["labels"].tolist() == [[1, 0, 0], [1, 1, 1], [0, 0, 0]]
    assert batch["num_instances"].tolist() == [1, 3, 0]
    # sample 0 is 32 x 64: its data at the top-left, zeros below; its padded people are all zero
    assert (batch["image"][0, :, :32] == 1.0).all() and (batch["image"][0, :, 32:] == 0).all()
    assert (batch["alphas"][0, 0, :32] == 0.5).all() and batch["alphas"][0, 0, 32:].abs().sum() == 0
    assert batch["alphas"][0, 1:].abs().sum() == 0 and batch["trimaps"][0, 1:].abs().sum() == 0
    assert (batch["image"][1, :, :, 32:] == 0).all() and (batch["trimaps"][1, :, :, :32] == 2).all()
    assert [m["name"] for m in batch["meta"]] == ["k1", "k3", "k0"]


def test_collate_all_empty_and_errors():
    batch = collate([_sample(0, 32, 32, 0.0)])
    assert batch["alphas"].shape == (1, 0, 32, 32) and batch["valid"].shape == (1, 0)
    with pytest.raises(ValueError, match="empty"):
        collate([])
