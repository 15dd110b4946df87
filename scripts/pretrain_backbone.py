"""Make a stand-in for ImageNet weights: a timm classifier trained briefly on the built-in synthetic people,
saved as timm saves its weights (a plain state dict with the classifier, BatchNorm statistics included).

    python scripts/pretrain_backbone.py --model resnet18 --steps 300 --out /tmp/resnet18_synthetic.pth

No ImageNet weights can be reached from our machines; this file lets the tests and docs/training.md compare
what the backbone's norm does with pretrained weights (`model.net.backbone.norm` gn vs frozen_bn) on a real
pretrained-style file. Task: how many people (0-3) an image shows, at 96 x 96, batch 16, SGD with momentum.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F

from e2e_him.data.synthetic import SyntheticPeople
from e2e_him.data.transforms import normalize_image


def batches(size: int, batch: int, seed: int):
    """Endless (images (B, 3, size, size), counts (B,)) of synthetic scenes with 0-3 people."""
    source = SyntheticPeople(
        num_samples=10**6, image_size=(size, size), min_people=0, max_people=3, seed=seed
    )
    index = 0
    while True:
        records = [source[i] for i in range(index, index + batch)]
        index += batch
        images = torch.stack([normalize_image(r["image"]) for r in records])
        counts = torch.tensor([len(r["alphas"]) for r in records])
        yield images, counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False, num_classes=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.05, total_steps=args.steps)
    model.train()
    start, accuracy = time.time(), []
    for step, (images, counts) in zip(range(args.steps), batches(args.size, args.batch, seed=7)):
        logits = model(images)
        loss = F.cross_entropy(logits, counts)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        accuracy.append(float((logits.argmax(1) == counts).float().mean()))
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {loss.item():.3f}, accuracy (last 50) {np.mean(accuracy[-50:]):.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)  # timm's layout: conv1, bn1 (with running stats), layer1-4, fc
    print(f"wrote {args.out} after {args.steps} steps in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
