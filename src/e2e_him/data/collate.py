"""Batching samples with different numbers of people and sizes (docs/contracts.md section 2)."""

from __future__ import annotations

import torch


def collate(samples: list[dict]) -> dict:
    """Stack samples into a batch, zero-padding K to the batch's Kmax and H, W to its largest (bottom/right).

    Args:
        samples: dicts with "image" (3, H, W), "alphas" / "masks" / "trimaps" (K, H, W), "labels" (K,),
            "meta".

    Returns:
        {"image": (B, 3, H, W), "alphas" / "masks" / "trimaps": (B, Kmax, H, W), "labels": (B, Kmax) int64,
        "valid": (B, Kmax) bool, "num_instances": (B,) int64, "meta": list of B dicts}; padded people have
        label 0, zero maps and valid False.
    """
    if not samples:
        raise ValueError("collate: empty list of samples")
    B = len(samples)
    H = max(s["image"].shape[-2] for s in samples)
    W = max(s["image"].shape[-1] for s in samples)
    counts = [len(s["labels"]) for s in samples]
    kmax = max(counts)
    first = samples[0]
    image = first["image"].new_zeros((B, first["image"].shape[0], H, W))
    maps = {key: first[key].new_zeros((B, kmax, H, W)) for key in ("alphas", "masks", "trimaps")}
    labels = torch.zeros((B, kmax), dtype=torch.long)
    valid = torch.zeros((B, kmax), dtype=torch.bool)
    for b, s in enumerate(samples):
        h, w = s["image"].shape[-2:]
        image[b, :, :h, :w] = s["image"]
        k = counts[b]
        for key, out in maps.items():
            out[b, :k, :h, :w] = s[key]
        labels[b, :k] = s["labels"]
        valid[b, :k] = True
    return {
        "image": image,
        **maps,
        "labels": labels,
        "valid": valid,
        "num_instances": torch.tensor(counts, dtype=torch.long),
        "meta": [s["meta"] for s in samples],
    }
