"""A stand-in network for the demo's fast tests: three people with graded scores, counting its calls."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import torch
from PIL import Image

from e2e_him.predictor.mattes import Predictor

SCORES = (0.9, 0.6, 0.2)  # p(human) of the left, middle and right thirds


class ThreePeople:
    """Query k: a person in the k-th third of the image (soft edges), with p(human) = SCORES[k]."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        self.calls = 0

    def __call__(
        self, images: torch.Tensor, keep_scores_above: float | None = None
    ) -> dict[str, torch.Tensor]:
        self.calls += 1
        b, _, h, w = images.shape
        x = torch.arange(w, dtype=torch.float32)
        thirds = [((x - k * w / 3) / 2 + 0.5).clamp(0, 1) * ((((k + 1) * w / 3) - x) / 2 + 0.5).clamp(0, 1)
                  for k in range(3)]  # fmt: skip
        alpha = torch.stack(thirds)[:, None, :].expand(3, h, w)
        logits = torch.tensor([[0.0, math.log(p / (1 - p))] for p in SCORES])
        return {"pred_logits": logits.expand(b, 3, 2).clone(), "alpha_fin": alpha.expand(b, 3, h, w).clone()}


def stub_predictor(eval_size: int = 64, score_threshold: float = 0.5) -> Predictor:
    return Predictor(ThreePeople(), eval_size=eval_size, score_threshold=score_threshold, min_area=0.0)


def write_photo(path, size=(48, 96), seed: int = 0):
    """A smooth RGB photo (H, W) = size (smooth: the foreground estimate keeps its colours)."""
    h, w = size
    rng = np.random.default_rng(seed)
    ramp = np.stack([*np.meshgrid(np.linspace(60, 200, w), np.linspace(40, 220, h)), np.full((h, w), 90)], 2)
    image = (ramp + rng.integers(0, 20, (h, w, 3))).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def write_clip(path, frames: int, size=(48, 96), fps: float = 10.0, sound: float | None = None):
    """An H.264 clip of `frames` smooth frames (H, W) = size that brighten over time; with `sound`, that many
    seconds of a 440 Hz tone (AAC) beside them (ffmpeg's lavfi source)."""
    import imageio.v2 as imageio
    import imageio_ffmpeg

    h, w = size
    path.parent.mkdir(parents=True, exist_ok=True)
    silent = path.with_name(f"silent_{path.name}") if sound else path
    base = np.stack([*np.meshgrid(np.linspace(60, 180, w), np.linspace(40, 200, h)), np.full((h, w), 90)], 2)
    with imageio.get_writer(str(silent), fps=fps, codec="libx264", macro_block_size=1) as writer:
        for t in range(frames):
            writer.append_data((base + 4 * t).clip(0, 255).astype(np.uint8))
    if sound:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(silent),
                        "-f", "lavfi", "-i", f"sine=frequency=440:duration={sound}", "-c:v", "copy",
                        "-c:a", "aac", str(path)], check=True)  # fmt: skip
        silent.unlink()
    return path
