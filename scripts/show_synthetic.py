"""A picture of the built-in synthetic data (`data=synthetic`) and the time it takes to make a sample.

    python scripts/show_synthetic.py                       # docs/images/synthetic_samples.png
    python scripts/show_synthetic.py --seed 3 --rows 5 --out /tmp/samples.png
    python scripts/show_synthetic.py --time 200            # also time 200 samples on one core

Each sample is shown as its image, the people colour-coded (each visible matte tints the image in its own
colour, in depth order), all the mattes (their sum, grey) and a 3x zoom on the soft edge of the front person's
head (hair strands, anti-aliased rim).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from e2e_him.data.synthetic import SyntheticPeople

REPO = Path(__file__).resolve().parents[1]
COLOURS = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
    ],
    np.float32,
)


def instance_panel(image: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """The image darkened, with each person's visible matte painted in its own colour."""
    out = image.astype(np.float32) * 0.25
    for k, a in enumerate(alphas):
        out += a[..., None] * COLOURS[k % len(COLOURS)] * 0.75
    return np.clip(out, 0, 255).astype(np.uint8)


def zoom_panel(alphas: np.ndarray, size: tuple[int, int], factor: int = 3) -> np.ndarray:
    """A `factor` x nearest-neighbour zoom of the mattes where most pixels are soft (hair wisps first)."""
    H, W = size
    total = np.clip(alphas.sum(0), 0, 1) if len(alphas) else np.zeros(size, np.float32)
    h, w = H // factor, W // factor
    soft = (total > 0.02) & (total < 0.98)
    far = cv2.distanceTransform((total < 0.9).astype(np.uint8), cv2.DIST_L2, 3) > 3  # off the solid body
    score = soft * (1.0 + 4.0 * far)  # hair wisps count more than blurred rims
    density = cv2.boxFilter(
        score.astype(np.float32), -1, (w, h), normalize=False, borderType=cv2.BORDER_CONSTANT
    )
    cy, cx = np.unravel_index(int(np.argmax(density)), density.shape)
    y0, x0 = int(np.clip(cy - h // 2, 0, H - h)), int(np.clip(cx - w // 2, 0, W - w))
    zoom = cv2.resize(total[y0 : y0 + h, x0 : x0 + w], (W, H), interpolation=cv2.INTER_NEAREST)
    return np.repeat((zoom * 255).astype(np.uint8)[..., None], 3, -1)


def label(panel: np.ndarray, text: str) -> np.ndarray:
    """Write `text` in the panel's top-left corner."""
    panel = panel.copy()
    cv2.putText(panel, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(panel, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def grid(source: SyntheticPeople, rows: int, cols: int, gap: int = 4) -> np.ndarray:
    """`rows` x `cols` samples, each as four panels (image, people, mattes, 3x zoom of the mattes)."""
    H, W = source.image_size
    blocks = []
    for r in range(rows):
        line = []
        for c in range(cols):
            rec = source[r * cols + c]
            alphas = rec["alphas"]
            total = np.repeat((np.clip(alphas.sum(0), 0, 1) * 255).astype(np.uint8)[..., None], 3, -1)
            panels = [
                label(rec["image"], rec["name"][-6:]),
                label(instance_panel(rec["image"], alphas), f"K={len(alphas)}"),
                label(total, "sum of mattes"),
                label(zoom_panel(alphas, (H, W)), "3x zoom"),
            ]
            sep = np.full((H, gap, 3), 255, np.uint8)
            line.append(np.concatenate([x for p in panels for x in (p, sep)][:-1], 1))
            line.append(np.full((H, gap * 4, 3), 255, np.uint8))
        blocks.append(np.concatenate(line[:-1], 1))
        blocks.append(np.full((gap, blocks[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(blocks[:-1], 0)


def save_small(picture: np.ndarray, path: Path, max_bytes: int = 500_000) -> None:
    """Save as PNG; when too large, with an adaptive 256-colour palette (then 128, 64)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(picture)
    img.save(path, optimize=True)
    for colours in (256, 128, 64):
        if path.stat().st_size <= max_bytes:
            break
        img.quantize(colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def time_samples(source: SyntheticPeople, n: int) -> None:
    """Print the mean / median / 95th-percentile time of making one sample, on one core."""
    cv2.setNumThreads(1)
    source[0]  # loads the background photos
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        source[i]
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    H, W = source.image_size
    print(
        f"{n} samples of {H}x{W}, {source.min_people}-{source.max_people} people: mean {ms.mean():.2f} ms, "
        f"median {np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms, max {ms.max():.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--cols", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "synthetic_samples.png")
    parser.add_argument("--time", type=int, default=0, help="also time this many samples")
    args = parser.parse_args()
    source = SyntheticPeople(
        num_samples=max(args.rows * args.cols, args.time), image_size=args.size, seed=args.seed
    )
    save_small(grid(source, args.rows, args.cols), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1000:.0f} KB)")
    if args.time:
        time_samples(source, args.time)


if __name__ == "__main__":
    main()
