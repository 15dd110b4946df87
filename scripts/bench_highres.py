"""Time and peak memory of predict on high-resolution photos, and a picture of guided refinement.

    python scripts/bench_highres.py experiment=backbone_swin_tiny                     # 1920x1080, 4000x3000
    python scripts/bench_highres.py --ckpt model.ckpt --eval-sizes 640,1280 --people 3
    python scripts/bench_highres.py --figure docs/images/highres_hair.jpg            # the picture only

Arguments with "=" are Hydra overrides of conf/train.yaml (the model; random weights are fine for time and
memory) unless `--ckpt` is given. Each setting (photo size x network working size x refinement) runs in a
fresh process, which reports the seconds of one `Predictor` call on the photo (after a warm-up call on a
small photo) and its peak resident memory (ru_maxrss). `--people K` makes exactly K queries pass the class
head (random weights pass any number), as in a photo with K people.

`--figure` writes a crop of a portrait's hair: the photo, plain bilinear upsampling of a working-size matte,
guided refinement, and the full-resolution reference. There are no trained weights nor true 4K mattes here:
the working-size matte is the reference matte (`../shared/data/p3m_pseudo`, made by P3M-Net) shrunk 3x, the
ratio of a 4000 px photo to a 1280 px working size; the errors in the transition band are printed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class FirstPeople:
    """A backend wrapper under which exactly the first `k` queries are people (p(human) ~ 1)."""

    def __init__(self, backend, k: int) -> None:
        self.backend, self.k, self.device = backend, k, getattr(backend, "device", torch.device("cpu"))

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = dict(self.backend(images))
        logits = torch.full_like(out["pred_logits"], -10.0)
        logits[..., 0] = 10.0
        logits[:, : self.k, :] = torch.tensor([-10.0, 10.0])
        out["pred_logits"] = logits
        return out


def photo(size: tuple[int, int]) -> np.ndarray:
    """A group photo of `size` (H, W) resized from ../shared (random pixels without it)."""
    import cv2

    from e2e_him.data.io import read_image

    source = SHARED / "demo" / "group1.jpg"
    if not source.is_file():
        return np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    return cv2.resize(read_image(source), (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def child(args: argparse.Namespace, overrides: list[str]) -> None:
    """One setting in this process; prints a JSON line."""
    from e2e_him.predictor.backends import TorchBackend
    from e2e_him.predictor.mattes import Predictor

    if args.ckpt:
        from e2e_him.models.checkpoint import load_module

        net = load_module(args.ckpt).net
    else:
        from e2e_him.utils.config import compose_config
        from e2e_him.utils.instantiate import build

        torch.manual_seed(0)
        # timing does not depend on the weights: the backbone's pretrained ones are never fetched
        net = build(
            compose_config("train", [*overrides, "model.net.backbone.pretrained=null"]).model, "model"
        ).net
    backend = FirstPeople(TorchBackend(net, "cpu", args.precision), args.people)
    predictor = Predictor(backend, args.eval_size, 0.5, 0.0, refine=args.refine)
    predictor(photo((256, 256)))  # warm-up
    image = photo(tuple(args.size))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    start = time.perf_counter()
    people = predictor(image)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(
        json.dumps(
            {"seconds": seconds, "peak_mib": peak, "before_mib": before, "people": len(people["alphas"])}
        )
    )


def figure(path: Path, stem: str = "p_bd6af989", factor: int = 3, crop: int = 360) -> None:
    import cv2
    from PIL import Image, ImageDraw

    from e2e_him.data.io import read_alpha, read_image
    from e2e_him.predictor.refine import refine_mattes, upsample_mattes

    image = read_image(SHARED / "p3m_pseudo" / "images" / f"{stem}.jpg")
    reference = read_alpha(SHARED / "p3m_pseudo" / "alphas" / f"{stem}.png")
    h, w = reference.shape
    small = cv2.resize(reference, (w // factor, h // factor), interpolation=cv2.INTER_AREA)[None]
    plain = upsample_mattes(small, (h, w))[0]
    refined = refine_mattes(image, small)[0]
    band = (reference > 0.01) & (reference < 0.99)
    for name, matte in (("bilinear", plain), ("guided", refined)):
        gy, gx = np.gradient(matte)
        ry, rx = np.gradient(reference)
        grad = np.abs(np.hypot(gx, gy) - np.hypot(rx, ry))[band].mean()
        print(
            f"{name}: MAD in the band {np.abs(matte - reference)[band].mean():.4f}, gradient error {grad:.4f}"
        )
    density = cv2.boxFilter(band.astype(np.float32), -1, (crop, crop))  # the crop with the most soft edges
    y, x = np.unravel_index(np.argmax(density), density.shape)
    y0, x0 = int(np.clip(y - crop // 2, 0, h - crop)), int(np.clip(x - crop // 2, 0, w - crop))
    window = (slice(y0, y0 + crop), slice(x0, x0 + crop))
    panels = [image[window]] + [np.repeat((m[window] * 255).round().astype(np.uint8)[..., None], 3, 2)
                                for m in (plain, refined, reference)]  # fmt: skip
    titles = ["photo", f"bilinear x{factor}", f"guided x{factor} (ours)", "reference"]
    canvas = Image.new("RGB", (4 * crop + 30, crop + 24), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (panel, title) in enumerate(zip(panels, titles)):
        canvas.paste(Image.fromarray(panel), (i * (crop + 10), 24))
        draw.text((i * (crop + 10) + 4, 4), title, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, quality=92)
    print(f"wrote {path} ({stem}, crop at y={y0}, x={x0})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--sizes", default="1080x1920,3000x4000", help="photo sizes HxW")
    parser.add_argument("--eval-sizes", default="640,1280")
    parser.add_argument("--refines", default="none,guided")
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--figure", default=None, help="write the hair picture to this path and stop")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--eval-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--refine", help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args(argv)
    if args.figure:
        return figure(Path(args.figure))
    if args.child:
        return child(args, overrides)
    print("| photo | working size | refinement | s / photo | peak RSS (MiB) |\n|---|---|---|---|---|")
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        for eval_size in args.eval_sizes.split(","):
            for refine in args.refines.split(","):
                ckpt = ["--ckpt", args.ckpt] if args.ckpt else []
                cmd = [sys.executable, __file__, "--child", "--size", str(h), str(w), "--eval-size",
                       eval_size, "--refine", refine, "--people", str(args.people), "--precision",
                       args.precision, *ckpt, *overrides]  # fmt: skip
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode:
                    print(f"| {w}x{h} | {eval_size} | {refine} | failed: {proc.stderr[-300:]} |")
                    continue
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                cells = f"{row['seconds']:.1f} | {row['peak_mib']:.0f}"
                print(f"| {w}x{h} | {eval_size} | {refine} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
