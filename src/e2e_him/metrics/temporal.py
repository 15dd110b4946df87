"""Temporal consistency of video mattes: dtSSD and MESSDdt, at MaGGIe's scale and the usual one.

Per person, with E_t = pred_t - gt_t, D_t = (pred_{t+1} - pred_t) - (gt_{t+1} - gt_t) and v_t the optical
flow of the ground truth from frame t to t+1 (OpenCV Farneback, MaGGIe's parameters):

- usual: dtSSD_x1e2 = sqrt(mean_pixels D_t^2) * 1e2 per frame pair (the convention of the video matting
  benchmarks, e.g. RVM's evaluation); MESSDdt_x1e3 = mean_pixels |E_t^2 - E_{t+1}^2(x + v_t(x))| * 1e3 per
  pair, the flow rounded to whole pixels and clamped at the border. Both are averaged over (person, pair).
- MaGGIe's code (`maggie/utils/metric.py`): frames are scored in groups (`maggie_groups`); per person and
  group G of frames, dtSSD_maggie = 0.1 * sqrt(sum_{t in G} sum_pixels D_t^2) (no division by the pixel
  count) and MESSDdt_maggie = 1e4 * sum_t sum_pixels |E_t^2 - E_1^2[idx_t]| / sum_t (HW + 1), both averaged
  over (person, group). Its sampling index idx_t swaps the axes, idx = clamp(x + v_x, 0, H-1) * W +
  clamp(y + v_y, 0, W-1), and `torch.take` reads every warped frame from the group's second frame (E_1);
  we reproduce both so that its numbers can be compared (docs/metrics.md, "MaGGIe's temporal metrics").
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

# cv2.calcOpticalFlowFarneback arguments in MaGGIe's MESSDdt (pyr_scale, levels, winsize, iterations,
# poly_n, poly_sigma, flags)
FARNEBACK_ARGS = (0.5, 5, 10, 2, 7, 1.5, cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
PROTOCOLS = ("clip3", "video")


def maggie_uint8(alpha: np.ndarray) -> np.ndarray:
    """A matte in [0, 1] as MaGGIe hands it to OpenCV: float32 alpha * 255, truncated to uint8."""
    return (np.asarray(alpha, dtype=np.float32) * np.float32(255.0)).astype(np.uint8)


def gt_flow(gt_t: np.ndarray, gt_next: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32 Farneback flow (dx, dy) of the ground truth from frame t to t+1."""
    return cv2.calcOpticalFlowFarneback(maggie_uint8(gt_t), maggie_uint8(gt_next), None, *FARNEBACK_ARGS)


def maggie_groups(num_frames: int, protocol: str = "clip3") -> tuple[list[list[int]], list[list[int]]]:
    """The frame groups MaGGIe scores together: (groups of the per-frame errors, groups of dtSSD/MESSDdt).

    "clip3": `maggie/engine/test.py` with V-HIM60's clip length 3 and overlap 2: frames 0 .. F-4 one by one,
    then F-3 .. F-1 together; temporal groups (t-1, t) for t = 1 .. F-4, then F-4 .. F-1 together. It
    needs F >= 5 (MaGGIe's loop fails on shorter videos); shorter videos use "video".
    "video": `tools/eval_baseline.py`: the whole video is one group for both.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"MaGGIe video protocol {protocol!r}: choose from {PROTOCOLS}")
    frames = list(range(num_frames))
    if protocol == "video" or num_frames < 5:
        return [frames], ([frames] if num_frames > 1 else [])
    singles = [[t] for t in range(num_frames - 3)]
    pairs = [[t - 1, t] for t in range(1, num_frames - 3)]
    return [*singles, frames[-3:]], [*pairs, frames[-4:]]


def dtssd_usual(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(T-1,) sqrt(mean_pixels D_t^2) * 1e2 for a person's (T, H, W) predicted and true mattes."""
    d = np.diff(pred.astype(np.float64), axis=0) - np.diff(gt.astype(np.float64), axis=0)
    return np.sqrt(np.square(d).reshape(len(d), -1).mean(1)) * 1e2


def dtssd_maggie(pred: np.ndarray, gt: np.ndarray) -> float:
    """MaGGIe's dtSSD of one person over one group of frames: 0.1 * sqrt(sum_t sum_pixels D_t^2)."""
    d = np.diff(pred.astype(np.float64), axis=0) - np.diff(gt.astype(np.float64), axis=0)
    return float(0.1 * np.sqrt(np.square(d).sum()))


def _rounded(flow: np.ndarray) -> np.ndarray:
    return np.rint(flow).astype(np.int64)


def messddt_usual(pred: np.ndarray, gt: np.ndarray, flows: list[np.ndarray]) -> np.ndarray:
    """(T-1,) mean_pixels |E_t^2 - E_{t+1}^2(x + v_t(x))| * 1e3, the flow rounded and clamped."""
    err2 = np.square(pred.astype(np.float64) - gt.astype(np.float64))  # (T, H, W)
    h, w = err2.shape[1:]
    rows, cols = np.mgrid[0:h, 0:w]
    out = np.zeros(len(flows))
    for t, flow in enumerate(flows):
        v = _rounded(flow)
        y = np.clip(rows + v[..., 1], 0, h - 1)
        x = np.clip(cols + v[..., 0], 0, w - 1)
        out[t] = np.abs(err2[t] - err2[t + 1][y, x]).mean() * 1e3
    return out


def messddt_maggie(pred: np.ndarray, gt: np.ndarray, flows: list[np.ndarray]) -> float:
    """MaGGIe's MESSDdt of one person over one group of T frames (its axis swap and `take` included)."""
    err2 = np.square(pred.astype(np.float32) - gt.astype(np.float32)).astype(np.float64)  # (T, H, W)
    h, w = err2.shape[1:]
    rows, cols = np.mgrid[0:h, 0:w]
    second = err2[1].ravel()  # torch.take on the (T-1, H, W) stack only ever reaches its first frame
    total = 0.0
    for t, flow in enumerate(flows):
        v = _rounded(flow)
        index = np.clip(cols + v[..., 0], 0, h - 1) * w + np.clip(rows + v[..., 1], 0, w - 1)
        total += float(np.abs(err2[t] - second[index]).sum())
    return total / (len(flows) * (h * w + 1.0)) * 1e4


TEMPORAL_KEYS = ("dtSSD_maggie", "MESSDdt_maggie", "dtSSD_x1e2", "MESSDdt_x1e3")


class TemporalMetrics(Metric):
    """dtSSD and MESSDdt at both scales, each the mean of its per-(person, pair or group) values.

    `accumulate(values)` takes {key: sequence of values} (from `e2e_him.evaluation.video.score_video`);
    `compute()` returns the keys present in `keys` (MESSDdt can be switched off: it needs optical flow).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, messddt: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.keys = [k for k in TEMPORAL_KEYS if messddt or not k.startswith("MESSDdt")]
        n = len(self.keys)
        self.add_state("sums", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def accumulate(self, values: dict[str, Sequence[float]]) -> None:
        """Add per-(person, pair or group) values computed in a worker: the same as `update`."""
        self.update(values)

    def update(self, values: dict[str, Sequence[float]]) -> None:
        """Add per-(person, pair or group) values ({key: sequence}, from `video.score_video`)."""
        dev = self.sums.device
        for i, k in enumerate(self.keys):
            v = np.asarray(values.get(k, ()), dtype=np.float64)
            self.sums[i] += torch.as_tensor(v.sum(), dtype=torch.float64, device=dev)
            self.counts[i] += float(len(v))

    def compute(self) -> dict[str, Tensor]:
        means = torch.where(
            self.counts > 0, self.sums / self.counts.clamp_min(1.0), torch.zeros_like(self.sums)
        )
        return {k: means[i] for i, k in enumerate(self.keys)}
