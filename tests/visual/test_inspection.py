"""Pictures of the network's internals: PCA colours, trimaps, the validation panel."""

from __future__ import annotations

import numpy as np
import torch

from e2e_him.visual.images import unnormalize
from e2e_him.visual.inspection import (
    heatmap,
    image_panels,
    panel_strip,
    pca_rgb,
    trimaps_to_color,
)


def test_pca_rgb_separates_regions_with_different_features():
    feats = torch.zeros(16, 8, 8)
    feats[:, :, :4] = torch.randn(16, 1, 1)
    feats[:, :, 4:] = torch.randn(16, 1, 1)
    rgb = pca_rgb(feats + 0.01 * torch.randn(16, 8, 8))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    left, right = rgb[:, :4].reshape(-1, 3).mean(0), rgb[:, 4:].reshape(-1, 3).mean(0)
    assert np.abs(left - right).max() > 100  # the first component tells the halves apart
    assert pca_rgb(torch.randn(2, 4, 4)).shape == (4, 4, 3)  # fewer channels than colours


def test_trimaps_to_color_and_heatmap():
    tri = np.zeros((2, 4, 4), np.int64)
    tri[0, 0, 0], tri[0, 0, 1], tri[1, 3, 3] = 2, 1, 2
    rgb = trimaps_to_color(tri)
    assert rgb[0, 0].max() > rgb[0, 1].max() > 0 and rgb[2, 2].max() == 0
    assert not np.array_equal(rgb[0, 0], rgb[3, 3])  # two people, two colours
    assert trimaps_to_color(np.zeros((0, 4, 5)), (4, 5)).shape == (4, 5, 3)
    hm = heatmap(np.array([[0.0, 1.0]]))
    assert hm[0, 0, 2] > hm[0, 0, 0] and hm[0, 1, 0] > hm[0, 1, 2]  # blue for 0, red for 1


def test_image_panels_of_a_batch():
    b, n, s, cg, h, w = 2, 5, 2, 4, 64, 64
    image = torch.zeros(b, 3, h, w)
    outputs = {
        "alpha_fin": torch.rand(b, n, h, w),
        "trimap_logits": torch.randn(b, n, 3, h // 2, w // 2),
        "guidance": torch.randn(b, s * cg, h // 8, w // 8),
        "guidance_attention": torch.rand(b, s, n + 1, h // 8, w // 8).softmax(2),
    }
    batch = {
        "image": image,
        "alphas": torch.rand(b, 3, h, w),
        "num_instances": torch.tensor([3, 1]),
        "meta": [{"input_size": (48, 64), "name": "a"}, {"input_size": (64, 64), "name": "b"}],
    }
    preds = [{"query_index": torch.tensor([4, 0])}, {"query_index": torch.tensor([], dtype=torch.long)}]
    tiles = image_panels(outputs, batch, preds, 0)
    assert [t for t, _ in tiles][:4] == [
        "input",
        "truth: 3 people",
        "prediction: 2 people",
        "predicted trimaps",
    ]
    assert len(tiles) == 4 + 2 * s and all(p.shape == (48, 64, 3) for _, p in tiles)
    assert panel_strip(tiles).shape == (48, 64 * len(tiles), 3)
    assert len(image_panels(outputs, batch, preds, 1)) == 4 + 2 * s  # no kept person still draws
    assert unnormalize(image[0], (10, 20)).shape == (10, 20, 3)
