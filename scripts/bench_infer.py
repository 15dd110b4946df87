"""Time our network's forward pass in its inference settings against float32 and the authors' network,
interleaved in one run, and check how far the mattes move from float32.

    python scripts/bench_infer.py experiment=backbone_swin_tiny                      # paper layout, Swin-T
    python scripts/bench_infer.py experiment=backbone_swin_tiny --authors-repo ~/E2E-HIM --rounds 5
    python scripts/bench_infer.py --ckpt path/to/model.ckpt --variants fp32,bf16,onnx --parts
    python scripts/bench_infer.py experiment=backbone_swin_tiny --variants fp32-cl,bf16 --batch 4
    python scripts/bench_infer.py experiment=backbone_swin_tiny --variants fp32-cl --decode 4  # 4 people
    python scripts/bench_infer.py experiment=quickstart --folder ../shared/data/demo   # images/s of predict

Arguments with "=" are Hydra overrides of conf/train.yaml (the model config; any layout with the output
contract of docs/contracts.md section 3), or `--ckpt` loads a checkpoint. Random weights are fine for timing.
Variants: fp32 (plain float32), fp32-cl (channels-last), bf16 (bfloat16 autocast + channels-last, where the
CPU has native bf16), mixed (bfloat16 in the alpha-only parts only, float32 elsewhere, channels-last),
bf16-compile (bf16 under torch.compile), onnx (onnxruntime, exported with the torchscript exporter into a
temporary file: fast, and right for Swin at batch 1 and 640 px). A PyTorch variant with "+band" (bf16+band)
runs with band-only refinement (the released layout), tile `--band-tile` (predict's default 16); the others
refine the whole image. `--keep-scores-above T` runs our variants as predict does (only queries with
p(human) > T decoded; not the ONNX graph) and measures the differences on the queries that float32 keeps;
`--decode K` picks T so that exactly the K likeliest queries are decoded (random weights find no people).
`--authors-repo PATH` adds the authors' released network (a checkout of aipixel/E2E-HIM: its
`matmodel.E2EHIMST` is imported from there at run time; it needs `einops`, and runs only at 640 x 640,
batch 1) with random weights. Every round times each variant once, in turn, the order rotated by one each
round (a variant runs slower after some others: give --rounds a multiple of the number of variants); the
table gives the median seconds per image, the ratio to the authors' network (or to fp32), and the mean / max
absolute difference of `alpha_fin` and of the class logits from our float32 output.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from copy import deepcopy
from functools import partial
from pathlib import Path

import numpy as np
import torch

from e2e_him.predictor.backends import OUTPUT_KEYS, OnnxBackend, TorchBackend

SHARED_PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "demo" / "group1.jpg"


def build_net(overrides: list[str], ckpt: str | None) -> torch.nn.Module:
    if ckpt:
        from e2e_him.models.checkpoint import load_module

        return load_module(ckpt).net.eval()
    from e2e_him.utils.config import compose_config
    from e2e_him.utils.instantiate import build

    torch.manual_seed(0)
    # timing does not depend on the weights: the backbone's pretrained ones are never fetched
    cfg = compose_config("train", [*overrides, "model.net.backbone.pretrained=null"])
    return build(cfg.model, "model").net.eval()


def input_batch(size: int, batch: int, photo: str | None) -> torch.Tensor:
    """A real photo (resized to size x size, as the authors' code does) repeated `batch` times, normalised."""
    import cv2

    from e2e_him.data.io import read_image
    from e2e_him.data.transforms import normalize_image

    path = Path(photo) if photo else SHARED_PHOTO
    if path.is_file():
        image = cv2.resize(read_image(path), (size, size), interpolation=cv2.INTER_AREA)
    else:
        image = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return normalize_image(image)[None].repeat(batch, 1, 1, 1)


def authors_network(repo: str) -> torch.nn.Module:
    """The authors' `E2EHIMST` from a checkout of their repository (random weights, eval mode)."""
    sys.path.insert(0, str(Path(repo).expanduser().resolve()))
    import matmodel  # the user's checkout of aipixel/E2E-HIM (GPL-3.0); never part of this project

    torch.manual_seed(0)
    return matmodel.E2EHIMST().eval()


def threshold_for(logits: torch.Tensor, k: int) -> float:
    """A p(human) threshold that exactly the K likeliest queries of logits (B, N, 2) pass in every image (the
    midpoint between the K-th and K+1-th score; the batch repeats one image), refused when ties prevent it."""
    scores = logits.float().softmax(dim=-1)[..., 1].sort(dim=1, descending=True).values  # (B, N)
    n = scores.shape[1]
    if not 1 <= k <= n:
        raise SystemExit(f"--decode takes 1 to {n} queries, got {k}")
    if k == n:
        return -1.0
    low, high = float(scores[:, k].max()), float(scores[:, k - 1].min())
    if not low < high:
        raise SystemExit(f"--decode {k}: the {k}-th and {k + 1}-th queries' scores tie")
    return (low + high) / 2


def variant(name: str, net: torch.nn.Module, tmp: Path, band_tile: int = 16, device: str = "cpu"):
    """A callable image batch -> outputs dict for one variant name ("<base>" or "<base>+band")."""
    base, _, extra = name.partition("+")
    if extra not in ("", "band") or (extra and base == "onnx"):
        raise ValueError(f"unknown variant {name!r}")
    tile = band_tile if extra == "band" else None
    if base == "onnx":
        from e2e_him.export import export_onnx

        net = net.to(memory_format=torch.contiguous_format)
        return OnnxBackend(export_onnx(net, tmp / "model.onnx", exporter="torchscript"))
    settings = {
        "fp32": ("fp32", False, False),
        "fp32-cl": ("fp32", True, False),
        "bf16": ("bf16", True, False),
        "mixed": ("mixed", True, False),
        "bf16-compile": ("bf16", True, True),
    }
    if base not in settings:
        raise ValueError(f"unknown variant {name!r}")
    precision, channels_last, compile = settings[base]
    return TorchBackend(net, device, precision, channels_last=channels_last, compile=compile, band_tile=tile)


def part_timer(net: torch.nn.Module) -> dict[str, list[float]]:
    """Forward hooks on the network's direct children recording their seconds per call."""
    times: dict[str, list[float]] = {}
    starts: dict[str, float] = {}
    for child_name, child in net.named_children():

        def pre(_m, _i, n=child_name):
            starts[n] = time.perf_counter()

        def post(_m, _i, _o, n=child_name):
            times.setdefault(n, []).append(time.perf_counter() - starts[n])

        child.register_forward_pre_hook(pre)
        child.register_forward_hook(post)
    return times


def folder_throughput(net: torch.nn.Module, folder: str, eval_size: int, precision: str) -> None:
    """Images per second of predict's photo loop over a folder, for background workers 0 / 1 and batch 1 / 4
    (mattes written to a temporary folder; no overlays)."""
    from e2e_him.data.io import list_images
    from e2e_him.predictor.mattes import Predictor
    from e2e_him.predictor.outputs import Extras
    from e2e_him.predictor.pipeline import predict_photos

    paths = list_images(folder)
    backend = TorchBackend(net, "cpu", precision, band_tile=16)  # predict's defaults
    predictor = Predictor(backend, eval_size, score_threshold=0.5, min_area=0)
    print(f"\n{len(paths)} photos of {folder}, eval_size {eval_size}, {predictor.backend.precision}:")
    print("| workers | batch | images / s |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as out:  # warm-up: oneDNN prepares its kernels per input shape
        predict_photos(predictor, paths, [p.stem for p in paths], Path(out), Extras(overlay=False))
    for workers, batch in ((0, 1), (1, 1), (0, 4), (1, 4)):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            predict_photos(predictor, paths, [p.stem for p in paths], Path(out), Extras(overlay=False),
                           batch, workers)  # fmt: skip
            print(f"| {workers} | {batch} | {len(paths) / (time.perf_counter() - start):.2f} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", default=None, help="a checkpoint instead of Hydra model overrides")
    parser.add_argument("--variants", default="fp32,fp32-cl,bf16")
    parser.add_argument("--authors-repo", default=None, help="checkout of aipixel/E2E-HIM for the baseline")
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--device", default="cpu", help="cpu or cuda (our variants; onnx and the authors' run on CPU)"
    )
    parser.add_argument("--photo", default=None, help="input photo (default: ../shared/data/demo/group1.jpg)")
    parser.add_argument("--parts", action="store_true", help="also time the network's direct children")
    parser.add_argument("--folder", default=None, help="only time predict's loop over this folder")
    parser.add_argument("--eval-size", type=int, default=640, help="with --folder: the working size")
    parser.add_argument("--band-tile", type=int, default=16, help="the tile of the +band variants")
    parser.add_argument("--keep-scores-above", type=float, default=None,
                        help="decode only queries above this p(human), as predict does")  # fmt: skip
    parser.add_argument("--decode", type=int, default=None, metavar="K",
                        help="decode exactly the K likeliest queries, as for a trained network that "
                             "finds K people (sets --keep-scores-above between the K-th and K+1-th "
                             "scores)")  # fmt: skip
    args, overrides = parser.parse_known_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    net = build_net(overrides, args.ckpt)
    if args.folder:
        return folder_throughput(net, args.folder, args.eval_size, "auto")
    image = input_batch(args.size, args.batch, args.photo)
    names = [v for v in args.variants.split(",") if v]
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        with torch.inference_mode():
            ref_net = deepcopy(net).to(args.device)
            reference = {
                k: v.float().cpu() for k, v in ref_net(image.to(args.device)).items() if k in OUTPUT_KEYS
            }
            del ref_net
        kept = torch.ones(reference["pred_logits"].shape[:2], dtype=torch.bool)  # (B, N): compared queries
        if args.decode is not None:
            args.keep_scores_above = threshold_for(reference["pred_logits"], args.decode)
        if args.keep_scores_above is not None:
            kept = reference["pred_logits"].softmax(-1)[..., 1] > args.keep_scores_above
            print(f"{int(kept.sum())} of {kept.numel()} queries above {args.keep_scores_above}")
        runners, parts = {}, {}
        for n in names:  # each variant gets its own copy: backends convert the weights in place
            copy = deepcopy(net)
            if args.parts and n != "onnx":
                parts[n] = part_timer(copy)
            backend = variant(n, copy, Path(tmp), args.band_tile, "cpu" if n == "onnx" else args.device)
            runners[n] = partial(backend, keep_scores_above=args.keep_scores_above)
        if args.authors_repo:
            if (args.size, args.batch) != (640, 1):
                raise SystemExit("the authors' network runs only at 640 x 640, batch 1")
            authors = authors_network(args.authors_repo)
            runners = {"authors": lambda x: authors(x), **runners}
        seconds: dict[str, list[float]] = {n: [] for n in runners}
        part_rows: dict[str, dict[str, list[float]]] = {}
        errors = {}
        for name, run in runners.items():  # warm-up, and the differences from float32
            with torch.inference_mode():
                out = {k: v.cpu() for k, v in run(image).items() if torch.is_tensor(v)}
            if name != "authors" and kept.any():
                d = (out["alpha_fin"].float() - reference["alpha_fin"]).abs()[kept]
                dl = (out["pred_logits"].float() - reference["pred_logits"]).abs()
                errors[name] = (float(d.mean()), float(d.max()), float(dl.max()))
        order = list(runners)
        for r in range(args.rounds):
            # each round starts one variant later: a variant is slowed by the one run before it (caches,
            # memory), so every variant follows each of the others in turn
            for name in order[r % len(order) :] + order[: r % len(order)]:
                run = runners[name]
                for v in parts.get(name, {}).values():
                    v.clear()
                start = time.perf_counter()
                with torch.inference_mode():
                    run(image)
                sync()
                seconds[name].append((time.perf_counter() - start) / args.batch)
                for part, v in parts.get(name, {}).items():
                    part_rows.setdefault(name, {}).setdefault(part, []).append(sum(v) / args.batch)
            print(f"round {r}: " + ", ".join(f"{n} {s[-1]:.2f}s" for n, s in seconds.items()), flush=True)
    median = {n: statistics.median(s) for n, s in seconds.items()}
    base = "authors" if "authors" in median else names[0]
    where = torch.cuda.get_device_name() if cuda else f"{torch.get_num_threads()} threads"
    print(f"\n{args.size} x {args.size}, batch {args.batch}, {where}, "
          f"{args.rounds} rounds, median s/image; differences from our float32 output")  # fmt: skip
    print(
        f"| variant | s / image | images / s | {base} / variant | alpha_fin MAD | alpha_fin max "
        "| logits max |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, value in median.items():
        err = errors.get(name)
        cells = [f"{e:.2e}" for e in err] if err else ["-", "-", "-"]
        print(
            f"| {name} | {value:.3f} | {1 / value:.1f} | {median[base] / value:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    if part_rows:
        print("\nper part, median s/image:")
        for name, rows in part_rows.items():
            print(f"  {name}: " + ", ".join(f"{p} {statistics.median(v):.2f}" for p, v in rows.items()))


if __name__ == "__main__":
    main()
