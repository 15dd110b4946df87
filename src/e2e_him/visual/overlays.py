"""Pictures of people and mattes: colour overlays and prediction grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Distinct, saturated colours (people 1..12), then golden-ratio hues for more.
_PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [0, 130, 200],
        [255, 225, 25],
        [145, 30, 180],
        [70, 240, 240],
        [245, 130, 48],
        [240, 50, 230],
        [210, 245, 60],
        [0, 128, 128],
        [170, 110, 40],
        [128, 0, 0],
    ],
    dtype=np.uint8,
)


def instance_colors(n: int) -> np.ndarray:
    """(n, 3) uint8 colours, the same person index always getting the same colour."""
    if n <= len(_PALETTE):
        return _PALETTE[:n].copy()
    import colorsys

    extra = [
        np.array(colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85, 0.95)) * 255
        for i in range(n - len(_PALETTE))
    ]
    return np.concatenate([_PALETTE, np.round(np.stack(extra)).astype(np.uint8)])


def overlay_instances(
    image: np.ndarray, alphas: np.ndarray, strength: float = 0.65, ids: np.ndarray | None = None
) -> np.ndarray:
    """Tint each person of `image` (H, W, 3) uint8 with its colour, weighted by its alpha (K, H, W) in [0, 1].

    The background is darkened a little so that soft edges and thin strands stay visible. `ids` (K,) picks
    each person's colour (e.g. track ids in a video, so a person keeps its colour); default 0..K-1.
    """
    img = image.astype(np.float32)
    alphas = np.asarray(alphas, dtype=np.float32).reshape(-1, *img.shape[:2])
    if alphas.shape[0] == 0:
        return np.round(img * 0.5).astype(np.uint8)
    ids = np.arange(alphas.shape[0]) if ids is None else np.asarray(ids, dtype=np.int64)
    colors = instance_colors(int(ids.max()) + 1)[ids].astype(np.float32)  # (K, 3)
    cover = np.clip(alphas.sum(0), 0.0, 1.0)[..., None]  # (H, W, 1)
    tint = np.einsum("khw,kc->hwc", alphas, colors) / np.maximum(cover, 1e-6)  # (H, W, 3)
    people = (1 - strength) * img + strength * tint
    out = cover * people + (1 - cover) * img * 0.5
    return np.round(out).clip(0, 255).astype(np.uint8)


def alphas_to_color(alphas: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """All mattes of an image drawn on black in their colours: (K, H, W) -> (H, W, 3) uint8."""
    alphas = np.asarray(alphas, dtype=np.float32)
    if alphas.ndim == 2:
        alphas = alphas[None]
    if alphas.shape[0] == 0:
        h, w = size if size is not None else alphas.shape[-2:]
        return np.zeros((h, w, 3), dtype=np.uint8)
    colors = instance_colors(alphas.shape[0]).astype(np.float32)
    out = np.einsum("khw,kc->hwc", alphas, colors)
    return np.round(out).clip(0, 255).astype(np.uint8)


def save_prediction_grid(
    rows: Sequence[tuple[np.ndarray, np.ndarray | None, np.ndarray]],
    path: str | Path,
    titles: Sequence[str] | None = None,
) -> Path:
    """Save a grid with one row per image: input, ground-truth people, predicted people, predicted mattes.

    Args:
        rows: (image (H, W, 3) uint8, gt alphas (Kg, H, W) or None, predicted alphas (Kp, H, W)) per image.
        path: output file (PNG or JPEG).
        titles: optional row titles (e.g. image names).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = ["input", "ground truth", "prediction", "predicted mattes"]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.2 * len(cols), 3.0 * len(rows)), squeeze=False)
    for r, (image, gt, pred) in enumerate(rows):
        panels = [
            image,
            overlay_instances(image, gt) if gt is not None else np.zeros_like(image),
            overlay_instances(image, pred),
            alphas_to_color(pred, image.shape[:2]),
        ]
        labels = [
            titles[r] if titles else "input",
            f"ground truth ({0 if gt is None else len(gt)} people)",
            f"prediction ({len(pred)} people)",
            "predicted mattes",
        ]
        for c, (panel, label) in enumerate(zip(panels, labels)):
            ax = axes[r][c]
            ax.imshow(panel)
            ax.set_title(label, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
