"""The best any perception mask can do at a training scale: each matte taken to the H/8 grid and back.

    python scripts/grid_ceiling.py                       # the default experiment's validation split
    python scripts/grid_ceiling.py experiment=synthetic_long
    python scripts/grid_ceiling.py data.val.image_size=[256,256] data.val.num_samples=300

The paper computes the perception masks M_pred (Eq. 2) and the whole united guidance (Eq. 3-5) on F_dc at H/8.
Where the trimaps and mattes follow the masks, a person the H/8 grid cannot draw cannot be matted either. This
script takes each validation person's ground-truth matte down to that grid (area averaging, the best a mask
logit per cell can hold), back up to the input (bilinear, as the network upsamples) and binarises it at 0.5,
then prints the IoU of that "perfect mask" with the person (alpha > 0.5): its mean and the share of people at
or above each IoU threshold of the instance metrics. Those shares bound REC_0.5 and REC_0.75 of any network
whose mattes follow its masks (docs/training.md).

Arguments with "=" are Hydra overrides of conf/train.yaml; `--stride` sets the grid's stride (8: F_dc).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build

THRESHOLDS = (0.5, 0.75)


def grid_ious(alphas: torch.Tensor, valid: torch.Tensor, stride: int = 8) -> torch.Tensor:
    """IoU of each person's matte after a round trip through the stride-`stride` grid (area down, bilinear up,
    > 0.5) with the matte itself (> 0.5).

    Args:
        alphas: (B, K, H, W) mattes in [0, 1], H and W multiples of `stride`.
        valid: (B, K) bool, the real people (the rest is padding).
        stride: the grid's stride.

    Returns:
        (P,) IoUs of the P valid people.
    """
    h, w = alphas.shape[-2:]
    if h % stride or w % stride:
        raise ValueError(f"the input {h}x{w} is not a multiple of the grid's stride {stride}")
    cells = F.avg_pool2d(alphas, stride)  # (B, K, H / stride, W / stride)
    drawn = F.interpolate(cells, size=(h, w), mode="bilinear") > 0.5
    person = alphas > 0.5
    inter = (drawn & person).flatten(2).sum(-1)
    union = (drawn | person).flatten(2).sum(-1)
    return (inter.float() / union.clamp(min=1).float())[valid]


def ceiling(ious: torch.Tensor) -> dict[str, float]:
    """Mean IoU and the share of people at or above each threshold."""
    out = {"people": float(ious.numel()), "mean_iou": float(ious.mean()) if ious.numel() else 0.0}
    for t in THRESHOLDS:
        out[f"share_{t}"] = float((ious >= t).float().mean()) if ious.numel() else 0.0
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stride", type=int, default=8, help="the grid's stride (F_dc: 8)")
    args, overrides = parser.parse_known_args(argv)
    cfg = compose_config("train", overrides)
    datamodule = build(cfg.data, "data")
    datamodule.setup("validate")
    ious, size = [], None
    for batch in datamodule.val_dataloader():
        ious.append(grid_ious(batch["alphas"], batch["valid"], args.stride))
        size = tuple(batch["alphas"].shape[-2:])
    result = ceiling(torch.cat(ious))
    h, w = size
    print(
        f"{cfg.experiment_name}: {int(result['people'])} people, input {h} x {w}, grid "
        f"{h // args.stride} x {w // args.stride}: mean IoU {result['mean_iou']:.3f}, "
        + ", ".join(f"IoU >= {t}: {result[f'share_{t}']:.3f}" for t in THRESHOLDS)
    )
    return result


if __name__ == "__main__":
    main()
