"""What band-only refinement saves: the released refiner's full-resolution stage on the whole image against on
the tiles that a real photo's unknown band touches (models/release/band.py), interleaved in one run.

    python scripts/bench_band.py --threads 2 --rounds 3
    python scripts/bench_band.py --alphas ../shared/data/p3m_pseudo/alphas --kernels 7,15,25 --tiles 16,32

The bands come from real people: every mask under `--alphas` (a folder of <photo>/NN.png instance mattes,
as ../shared/data/coco_persons, or of single mattes) resized to `--size` x `--size` (the release's input), and
the union of the unknown regions of `trimap_from_alpha` with each `--kernels` width (the unknown band of
a trained network is not known without trained weights; these widths bracket the paper's training trimaps).
The stage runs with the release's widths (131 -> 96 -> 64 channels), random weights (the time does not depend
on them), channels-last as predict runs it, in float32 and bfloat16 autocast where the CPU has it. Printed per
photo, width and tile: the fraction of pixels in the band, the fraction of tiles computed, and the seconds of
the whole-image stage and of the band-only stage (medians over the rounds), and whole / band.

`--shares 0.3,0.5,0.7` adds bands that touch those fractions of the tiles of the first `--tiles` size, the
tiles drawn at random: where whole / band crosses 1 is the break-even behind `MAX_TILE_SHARE`.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from e2e_him.data.trimap import UNKNOWN, trimap_from_alpha
from e2e_him.models.release.band import band_tiles, convs_on_tiles
from e2e_him.predictor.precision import native_bf16

ALPHAS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_persons" / "alphas"


def release_stage() -> nn.Sequential:
    """The released refiner's full-resolution stage (models/release/matting.py), random weights."""
    torch.manual_seed(0)
    stage = nn.Sequential(nn.Conv2d(131, 96, 3, padding=1), nn.Identity(), nn.Conv2d(96, 64, 3, padding=1))
    return stage.eval().to(memory_format=torch.channels_last)


def photo_mattes(root: Path, size: int) -> dict[str, torch.Tensor]:
    """photo name -> its people's mattes (K, size, size) in [0, 1]."""
    out = {}
    for entry in sorted(root.iterdir()):
        files = sorted(entry.glob("*.png")) if entry.is_dir() else [entry] if entry.suffix == ".png" else []
        mattes = [cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), (size, size)) for f in files]
        if mattes:
            out[entry.stem] = torch.from_numpy(np.stack(mattes)).float() / 255.0
    if not out:
        raise SystemExit(f"no mattes under {root}")
    return out


def random_band(size: int, tile: int, share: float) -> torch.Tensor:
    """(1, size, size) bool with one pixel in each of round(share * tiles) random tiles of `tile` px."""
    per_side = size // tile
    order = torch.randperm(per_side**2, generator=torch.Generator().manual_seed(0))
    chosen = order[: round(share * per_side**2)]
    band = torch.zeros(1, size, size, dtype=torch.bool)
    band[0, (chosen // per_side) * tile + tile // 2, (chosen % per_side) * tile + tile // 2] = True
    return band


def bands(photos: list, kernels: list[int], shares: list[float], size: int, tile: int):
    """(photo, people, kernel, band (1, H, W)) of every photo and kernel, then of every random share."""
    for name, mattes in photos:
        for kernel in kernels:
            band = (trimap_from_alpha(mattes, kernel) == UNKNOWN).any(dim=0, keepdim=True)  # (1, H, W)
            yield name, len(mattes), kernel, band
    for share in shares:
        yield f"random {share:.0%}", "-", "-", random_band(size, tile, share)


def timed(fn, precision: str) -> float:
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    with torch.inference_mode(), amp:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alphas", type=Path, default=ALPHAS)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--kernels", default="15")
    parser.add_argument("--tiles", default="16,32,64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--photos", type=int, default=None, help="at most this many photos")
    parser.add_argument("--shares", default="", help="tile fractions of random bands, e.g. 0.3,0.5,0.7")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = ["fp32"] + ["bf16"] * native_bf16(torch.device("cpu"))
    stage = release_stage()
    x = torch.randn(1, 131, args.size, args.size).contiguous(memory_format=torch.channels_last)
    kernels, tiles = [int(k) for k in args.kernels.split(",")], [int(t) for t in args.tiles.split(",")]
    photos = list(photo_mattes(args.alphas, args.size).items())[: args.photos]
    shares = [float(v) for v in args.shares.split(",") if v]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size} x {args.size}, "
          f"{len(photos)} photos, precisions {precisions}")  # fmt: skip
    print(
        "| photo | people | kernel | band px | tile | tiles computed | precision | whole s | band s | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    table = []
    for name, people, kernel, band in bands(photos, kernels, shares, args.size, tiles[0]):
        cases = {t: band_tiles(band, t) for t in tiles}
        for precision in precisions:
            calls = {"whole": partial(stage, x)}
            calls.update({t: partial(convs_on_tiles, stage, x, listed, t) for t, listed in cases.items()})
            runs: dict[object, list[float]] = {key: [] for key in calls}
            for _ in range(args.rounds):
                for key, call in calls.items():
                    runs[key].append(timed(call, precision))
            whole = statistics.median(runs["whole"])
            for t, listed in cases.items():
                part, share = statistics.median(runs[t]), len(listed) / (args.size // t) ** 2
                cells = [name, people, kernel, f"{band.float().mean():.1%}", t, f"{share:.1%}",
                         precision, f"{whole:.3f}", f"{part:.3f}", f"{whole / part:.2f}"]  # fmt: skip
                print("| " + " | ".join(map(str, cells)) + " |")
                table.append({"photo": name, "kernel": kernel, "tile": t, "share": share,
                              "precision": precision, "whole": whole, "band": part})  # fmt: skip
    return table


if __name__ == "__main__":
    main()
