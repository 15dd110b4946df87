"""How fast can a plain network learn where the people are on the synthetic data? A quickstart ceiling.

    python scripts/segmentation_ceiling.py                       # quickstart data: 128 px, 1-3 people
    python scripts/segmentation_ceiling.py --size 256 --max-people 6 --steps 1200
    python scripts/segmentation_ceiling.py --height-range 0.5 0.95

Trains timm's ResNet-18 (BatchNorm, random weights, as the quickstart's backbone) with a small FPN head on one
task only: the union of the people's mattes ("is this pixel any person?"), BCE + dice, AdamW 1e-3, batch 8.
Prints the validation IoU of that union mask every `--every` steps. E2E-HIM must do this and more (tell the
people apart, trimaps, mattes), so the IoU this reaches after N steps bounds what the quickstart's perception
masks can reach after N steps (docs/training.md).
"""

from __future__ import annotations

import argparse
import time

import timm
import torch
import torch.nn.functional as F
from torch import nn

from e2e_him.data.synthetic import SyntheticPeople
from e2e_him.data.transforms import normalize_image


class UnionSegmenter(nn.Module):
    """ResNet-18 features at strides 2-32, 1x1 laterals summed top-down, one 3x3 logit conv."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.encoder = timm.create_model("resnet18", features_only=True, pretrained=False)
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in self.encoder.feature_info.channels())
        self.head = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        y = self.laterals[-1](features[-1])
        for f, lateral in zip(features[-2::-1], self.laterals[-2::-1]):
            y = F.interpolate(y, size=f.shape[-2:], mode="bilinear") + lateral(f)
        return F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear")  # (B, 1, H, W) logits


def union_batch(dataset: SyntheticPeople, indices) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images (B, 3, H, W) and the union of their mattes (B, 1, H, W) in [0, 1]."""
    samples = [dataset[i] for i in indices]
    images = torch.stack([normalize_image(s["image"]) for s in samples])
    union = torch.stack([torch.as_tensor(s["alphas"]).sum(0).clamp(0, 1)[None] for s in samples])
    return images, union


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--max-people", type=int, default=3)
    parser.add_argument("--height-range", type=float, nargs=2, default=(0.25, 0.9))
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--val-samples", type=int, default=48)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    common = dict(
        image_size=(args.size, args.size), max_people=args.max_people, height_range=args.height_range
    )
    train = SyntheticPeople(num_samples=args.steps * args.batch_size + args.batch_size, seed=0, **common)
    val_images, val_union = union_batch(
        SyntheticPeople(num_samples=args.val_samples, seed=123, **common), range(args.val_samples)
    )
    model = UnionSegmenter()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    start = time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.every == 0:
            model.eval()
            with torch.no_grad():
                pred = model(val_images) > 0
            model.train()
            gt = val_union > 0.5
            iou = ((pred & gt).sum() / (pred | gt).sum().clamp(min=1)).item()
            print(f"step {step}: union IoU {iou:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
        if step == args.steps:
            break
        images, union = union_batch(train, range(step * args.batch_size, (step + 1) * args.batch_size))
        logits = model(images)
        prob = logits.sigmoid()
        dice = 1 - (2 * (prob * union).sum() + 1) / (prob.sum() + union.sum() + 1)
        loss = F.binary_cross_entropy_with_logits(logits, union) + dice
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


if __name__ == "__main__":
    main()
