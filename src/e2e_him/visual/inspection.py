"""Pictures of what the network computes (paper Fig. 4): features as PCA colours, attention maps, trimaps.

Used by the validation image panels (callbacks/image_panels.py) and the notebooks in notebooks/; the input
photo comes back through `visual.images.unnormalize`.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from e2e_him.visual.images import label, resize, unnormalize
from e2e_him.visual.overlays import instance_colors, overlay_instances


def pca_rgb(features: torch.Tensor) -> np.ndarray:
    """Features (C, h, w) as colours: their first 3 principal components, each stretched to [0, 255].

    Percentiles 1 and 99 of each component set its range, so a few extreme pixels do not wash the picture out.
    """
    c, h, w = features.shape
    x = features.detach().float().cpu().reshape(c, h * w).T  # (hw, C)
    x = x - x.mean(0, keepdim=True)
    q = min(3, c, h * w)
    _, _, v = torch.linalg.svd(x, full_matrices=False)  # rows of v: principal directions
    proj = x @ v[:q].T  # (hw, q)
    if q < 3:
        proj = torch.cat([proj, proj.new_zeros(h * w, 3 - q)], dim=1)
    lo = torch.quantile(proj, 0.01, dim=0)
    hi = torch.quantile(proj, 0.99, dim=0)
    proj = ((proj - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
    return (proj.reshape(h, w, 3) * 255).round().byte().numpy()


def heatmap(values: np.ndarray | torch.Tensor) -> np.ndarray:
    """A (h, w) map in [0, 1] as a colour heat map (h, w, 3) uint8 (blue = 0, red = 1)."""
    v = torch.as_tensor(values).detach().float().cpu().clamp(0, 1).numpy()
    colored = cv2.applyColorMap(np.round(v * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)


def trimaps_to_color(trimaps: np.ndarray | torch.Tensor, size: tuple[int, int] | None = None) -> np.ndarray:
    """Trimaps (K, H, W) in {0 bg, 1 unknown, 2 fg} on black: each person's foreground in its colour, its
    unknown band in the same colour at half brightness. (K = 0 gives black of `size`.)"""
    t = torch.as_tensor(trimaps).detach().cpu().long().numpy()
    if t.ndim == 2:
        t = t[None]
    if t.shape[0] == 0:
        h, w = size if size is not None else t.shape[-2:]
        return np.zeros((h, w, 3), dtype=np.uint8)
    colors = instance_colors(t.shape[0]).astype(np.float32)  # (K, 3)
    weight = np.choose(t, [0.0, 0.5, 1.0]).astype(np.float32)  # (K, H, W)
    out = np.max(weight[..., None] * colors[:, None, None, :], axis=0)
    return np.round(out).astype(np.uint8)


def image_panels(
    outputs: dict[str, Any], batch: dict[str, Any], preds: list[dict[str, Any]], index: int
) -> list[tuple[str, np.ndarray]]:
    """The labelled pictures of image `index` of a batch, all at its network-input size (h, w):

    input, ground-truth people, predicted people, the predicted trimaps of the kept people, and for each
    guidance head the PCA colours of its guidance features G_s (Eq. 4) and its spatial attention (Eq. 3, one
    colour per kept person). Returns (title, (h, w, 3) uint8) pairs.
    """
    meta = batch["meta"][index]
    h, w = (int(s) for s in meta["input_size"])
    image = unnormalize(batch["image"][index], (h, w))
    k = int(batch["num_instances"][index])
    gt = batch["alphas"][index, :k, :h, :w].detach().float().cpu().numpy()
    keep = preds[index]["query_index"].detach().cpu()
    pred_alpha = outputs["alpha_fin"][index, keep, :h, :w].detach().float().cpu().numpy()  # (K, h, w)
    tri = outputs["trimap_logits"][index, keep].detach().float()  # (K, 3, H/2, W/2)
    tri = F.interpolate(tri, size=batch["image"].shape[-2:], mode="nearest")[:, :, :h, :w].argmax(1)
    tiles = [
        ("input", image),
        (f"truth: {k} people", overlay_instances(image, gt)),
        (f"prediction: {len(keep)} people", overlay_instances(image, pred_alpha)),
        ("predicted trimaps", trimaps_to_color(tri, (h, w))),
    ]
    guidance, attention = outputs.get("guidance"), outputs.get("guidance_attention")
    if guidance is not None and attention is not None:
        heads = attention.shape[1]
        per_head = guidance.shape[1] // heads
        hs, ws = -(-h // 8), -(-w // 8)  # the H/8 grid cells covering the unpadded image
        for s in range(heads):
            feats = guidance[index, s * per_head : (s + 1) * per_head, :hs, :ws]
            tiles.append((f"guidance head {s + 1}", resize(pca_rgb(feats), (h, w))))
            att = attention[index, s, 1:][keep, :hs, :ws].detach().float().cpu().numpy()  # (K, h/8, w/8)
            att = np.stack([resize(a, (h, w)) for a in att]) if len(att) else np.zeros((0, h, w), np.float32)
            tiles.append((f"attention head {s + 1}", overlay_instances(image, att)))
    return tiles


def panel_strip(tiles: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Labelled tiles side by side: (h, n * w, 3) uint8."""
    return np.concatenate([label(t, title) for title, t in tiles], axis=1)


def batch_panel(
    outputs: dict[str, Any], batch: dict[str, Any], preds: list[dict[str, Any]], images: int, max_side: int
) -> np.ndarray:
    """The strips of the first `images` images of a batch stacked (`image_panels`, `panel_strip`), scaled
    down so that each strip is at most `max_side` pixels tall: (sum h, max w, 3) uint8."""
    n = min(images, batch["image"].shape[0])
    strips = [panel_strip(image_panels(outputs, batch, preds, i)) for i in range(n)]
    width = max(s.shape[1] for s in strips)
    strips = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in strips]
    panel = np.concatenate(strips, axis=0)
    tile = max(s.shape[0] for s in strips)
    if tile > max_side:
        scale = max_side / tile
        size = (max(1, round(panel.shape[1] * scale)), max(1, round(panel.shape[0] * scale)))
        panel = np.asarray(Image.fromarray(panel).resize(size, Image.BILINEAR))
    return panel
