"""Batching samples with different numbers of people and sizes (docs/contracts.md section 2)."""

from __future__ import annotations

import torch

from e2e_him.data.targets import MASK_FROM_ALPHA

MAPS = ("alphas", "masks", "trimaps")  # (K, H, W) per-person maps a sample may carry


def collate(samples: list[dict]) -> dict:
    """Stack samples into a batch, zero-padding K to the batch's Kmax and H, W to its largest (bottom/right).

    Evaluation samples carry float "alphas", "masks" and int64 "trimaps"; compact training samples
    (`data.targets`) carry uint8 "alphas" and only given "masks" (bool). Each map is stacked in its own
    dtype; when some compact samples of a batch give masks and others do not, the others get
    `alpha >= 0.5`, as on the device.

    Args:
        samples: dicts with "image" (3, H, W), the maps above (K, H, W), "labels" (K,), "meta".

    Returns:
        {"image": (B, 3, H, W), the maps (B, Kmax, H, W), "labels": (B, Kmax) int64, "valid": (B, Kmax) bool,
        "num_instances": (B,) int64, "meta": list of B dicts}; padded people have label 0, zero maps and
        valid False.
    """
    if not samples:
        raise ValueError("collate: empty list of samples")
    if any("masks" in s for s in samples):  # only compact samples go without masks
        samples = [s if "masks" in s else {**s, "masks": s["alphas"] >= MASK_FROM_ALPHA} for s in samples]
    B = len(samples)
    H = max(s["image"].shape[-2] for s in samples)
    W = max(s["image"].shape[-1] for s in samples)
    counts = [len(s["labels"]) for s in samples]
    kmax = max(counts)
    first = samples[0]
    image = first["image"].new_zeros((B, first["image"].shape[0], H, W))
    maps = {key: first[key].new_zeros((B, kmax, H, W)) for key in MAPS if key in first}
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
