"""A stand-in for the network in fast tests of the predict path: it has the output contract that the
post-processing reads (docs/contracts.md, section 3) and puts two people at fixed places."""

from __future__ import annotations

import numpy as np
import torch

from e2e_him.predictor.mattes import Predictor


class TwoPeople:
    """Query 0: a person in the left third, query 1: one in the right third (both p(human) ~ 1; the second
    only from call `second_from` on), query 2: rejected by the class head. Mattes are soft at the edges (a
    ramp of `ramp` pixels)."""

    device = torch.device("cpu")

    def __init__(self, ramp: int = 4, second_from: int = 0) -> None:
        self.ramp, self.second_from = ramp, second_from
        self.calls = 0

    def __call__(
        self, images: torch.Tensor, keep_scores_above: float | None = None
    ) -> dict[str, torch.Tensor]:
        self.calls += 1
        b, _, h, w = images.shape
        x = torch.arange(w, dtype=torch.float32)
        left = ((w / 3 - x) / self.ramp + 0.5).clamp(0, 1)
        right = ((x - 2 * w / 3) / self.ramp + 0.5).clamp(0, 1)
        alpha = torch.stack([left, right, torch.ones(w)])[:, None, :].expand(3, h, w)
        logits = torch.tensor([[-5.0, 5.0], [-5.0, 5.0], [5.0, -5.0]])
        if self.calls <= self.second_from:
            logits[1] = logits[2]
        return {"pred_logits": logits.expand(b, 3, 2).clone(), "alpha_fin": alpha.expand(b, 3, h, w).clone()}


def stub_predictor(eval_size: int | None = 64, second_from: int = 0, **kwargs) -> Predictor:
    network = TwoPeople(second_from=second_from)
    return Predictor(network, eval_size=eval_size, score_threshold=0.5, min_area=0.0, **kwargs)


def write_video(path, frames: int, size=(48, 64), fps: float = 10.0, faststart: bool = False) -> None:
    """An H.264 clip of `frames` frames (H, W) = size whose brightness changes over time."""
    import imageio.v2 as imageio

    params = ["-movflags", "+faststart"] if faststart else None
    writer = imageio.get_writer(str(path), fps=fps, codec="libx264", macro_block_size=1, ffmpeg_params=params)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    for t in range(frames):
        writer.append_data(np.roll(base, t, axis=1))
    writer.close()
