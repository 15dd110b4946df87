"""Single-matte human matting errors SAD, MSE, MAD, Grad, Conn over the whole image (Tables III-VI).

The prediction for an image is the sum of its predicted people clipped to [0, 1] (the paper sums E2E-HIM's
instances on P3M-500-NP). Conventions of the trimap-free human matting literature (MODNet, P3M-Net), alpha in
[0, 1], every pixel of the image counted:

    SAD  = sum |p - g| / 1000          MSE = mean (p - g)^2          MAD = mean |p - g|
    Grad = sum (|grad p| - |grad g|)^2 / 1000      Conn = sum |phi_p - phi_g| / 1000

Grad and Conn use the DIM benchmark's filters and connectivity (`e2e_him.metrics.errors`) and its /1000 scale.
(P3M-Net's script computes Grad with scipy's `gaussian_filter` and divides by 10 instead: its Grad numbers are
not on this scale. The paper's tables report only SAD, MAD and MSE.) Each metric is the mean of the per-image
values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from e2e_him.metrics.errors import connectivity_error_map, gradient_error_map
from e2e_him.metrics.precomputed import Precomputed

HUMAN_KEYS = ("SAD", "MSE", "MAD", "Grad", "Conn")


def merge_people(preds: Tensor) -> Tensor:
    """One matte from an image's predicted people: sum over people clipped to [0, 1].

    Args:
        preds: (Kp, H, W) or (H, W) mattes; Kp may be 0 (a zero matte).

    Returns:
        (H, W) float32.
    """
    if preds.ndim == 2:
        return preds.float().clamp(0.0, 1.0)
    if preds.ndim != 3:
        raise ValueError(f"predictions must be (K, H, W) or (H, W), got {tuple(preds.shape)}")
    return preds.float().sum(0).clamp(0.0, 1.0)


def human_matting_errors(pred: np.ndarray, gt: np.ndarray, grad_conn: bool = True) -> dict[str, float]:
    """SAD, MSE, MAD (and Grad, Conn) of one (H, W) matte against its ground truth, both in [0, 1]."""
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    diff = pred.astype(np.float64) - gt.astype(np.float64)
    out = {
        "SAD": float(np.abs(diff).sum() / 1000.0),
        "MSE": float(np.square(diff).mean()),
        "MAD": float(np.abs(diff).mean()),
    }
    if grad_conn:
        out["Grad"] = float(gradient_error_map(pred, gt).sum() / 1000.0)
        out["Conn"] = float(connectivity_error_map(pred, gt).sum() / 1000.0)
    return out


class HumanMattingMetrics(Metric):
    """Mean per-image SAD, MSE, MAD, Grad and Conn of the summed prediction against a single matte.

    `update(preds, targets)`: `preds[i]` (Kp, H, W) predicted people (summed and clipped), `targets[i]` (H, W)
    or (1, H, W), float in [0, 1]. `compute()` returns `SAD`, `MSE`, `MAD`, `Grad`, `Conn` (float64 scalars).

    Args:
        grad_conn: also compute Grad and Conn (CPU, a few tens of ms per megapixel); False drops those keys.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, grad_conn: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.grad_conn = bool(grad_conn)
        self.keys = HUMAN_KEYS if self.grad_conn else HUMAN_KEYS[:3]
        self.add_state("sums", torch.zeros(len(self.keys), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_images", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: Sequence[Tensor] | Precomputed, targets: Sequence[Tensor] = ()) -> None:
        """Accumulate a batch of images (one list entry per image), or add `Precomputed` errors."""
        if isinstance(preds, Precomputed):
            self._add(preds.stats)
            return
        if len(preds) != len(targets):
            raise ValueError(
                f"got {len(preds)} predictions but {len(targets)} targets: one entry per image in both"
            )
        for i, (p, t) in enumerate(zip(preds, targets)):
            t = t.detach()
            if t.ndim == 3 and t.shape[0] == 1:
                t = t[0]
            if t.ndim != 2:
                raise ValueError(f"image {i}: target must be (H, W) or (1, H, W), got {tuple(t.shape)}")
            if p.shape[-2:] != t.shape:
                raise ValueError(
                    f"image {i}: prediction size {tuple(p.shape[-2:])} differs from target {tuple(t.shape)}"
                )
            pred = merge_people(p.detach()).cpu().numpy()
            self._add(human_matting_errors(pred, t.float().cpu().numpy(), self.grad_conn))

    def accumulate(self, errors: dict[str, float]) -> None:
        """Add one image's `human_matting_errors` (e.g. computed in a worker process), via `update`."""
        self.update(Precomputed(errors))

    def _add(self, errors: dict[str, float]) -> None:
        values = torch.tensor([errors[k] for k in self.keys], dtype=torch.float64, device=self.sums.device)
        self.sums += values
        self.num_images += 1

    def compute(self) -> dict[str, Tensor]:
        """The mean of each per-image error (0 before any image)."""
        means = self.sums / self.num_images.double().clamp_min(1.0)
        return {k: means[i] for i, k in enumerate(self.keys)}
