"""Check our released layout against golden outputs of the authors' network, number for number.

    python scripts/release_parity.py WEIGHTS.pth IMAGE.png GOLDEN.npz [--batch 2] [--via-checkpoint]

WEIGHTS.pth: a state dict in the release's format (what `torch.save(E2EHIMST().state_dict())` writes; read
with `torch.load(weights_only=True)`). IMAGE.png: a 640 x 640 image. GOLDEN.npz: the outputs of the authors'
network on it (../shared/fixtures/official_swint/README.md): `class_logits` (1, N, 2), `alpha_raw_stride4`
(1, N, H/4, W/4), `alpha_raw_sum` and `alpha_clamped_sum` (1, N), `trimap_logits_stride8_off3`
(1, 3N, H/8, W/8) and `trimap_logits_sum` (1, 3N). The weights are converted by `e2e_him.convert_release`,
the image is read as the fixture says (OpenCV BGR -> RGB, /255, ImageNet mean and std), our `ReleaseE2EHIM`
runs in float32 on the CPU, and the largest difference of every golden array is printed. Exit status 1 when
any exceeds its tolerance: 1e-4 absolute on the class logits, 1e-3 absolute on the sampled maps, 1e-4
relative on the sums.

`--batch 2` runs the image twice in one batch (every copy is checked); `--via-checkpoint` converts to our
checkpoint format on disk first and loads the model back from it (the path `predict` and `eval` take).

The check runs the released layout with `release_rounding` (the guidance's sums in the release's float32
order, bit for bit). `alpha_clamped_sum` adds up the few alphas that are barely above 0 under the fixture's
random weights, so it magnifies last-bit differences: with `--batched` (the faster guidance that
`ReleaseE2EHIM` uses by default) every other array stays far inside its tolerance and that one lands near
1e-4. Run with PyTorch's default thread count: the golden file was made with 2 threads, and the authors'
network itself misses the clamped-sum tolerance when it runs on 1 thread.

That sum is only reproducible on a CPU that rounds float32 as the golden file's machine did: on an Intel Xeon
(AVX512 + AMX) every array here is bit-identical to the golden one; on an AMD EPYC (AVX512, no AMX) the class
logits differ by about 1e-6, every other array stays within its tolerance, and `alpha_clamped_sum` misses by
about 3e-4, as does the same network evaluated in float64 (`--float64`, about 2e-4): the golden sum itself is
that far from the exact value. The script then still fails (the tolerance is the fixture's), and says why.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from e2e_him.convert_release import convert
from e2e_him.models.checkpoint import load_module
from e2e_him.models.release.convert import (
    build_release_module,
    load_release_state_dict,
    release_run_config,
    release_to_ours,
)

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
ABSOLUTE = {"class_logits": 1e-4, "alpha_raw_stride4": 1e-3, "trimap_logits_stride8_off3": 1e-3}
RELATIVE = {"alpha_raw_sum": 1e-4, "alpha_clamped_sum": 1e-4, "trimap_logits_sum": 1e-4}


def read_fixture_image(path: str | Path) -> torch.Tensor:
    """(1, 3, H, W) float32: OpenCV BGR -> RGB, / 255, ImageNet-normalised."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    rgb = (bgr[:, :, ::-1].astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


def golden_arrays(outputs: dict) -> dict[str, np.ndarray]:
    """The fixture's arrays from our network's outputs (the same sampling as the golden file)."""
    b, n, _, h, w = outputs["trimap_logits"].shape
    size = outputs["alpha_raw"].shape[-2:]
    trimap = F.interpolate(outputs["trimap_logits"].reshape(b, n * 3, h, w), size=size, mode="bilinear")
    alpha = outputs["alpha_raw"]
    arrays = {
        "class_logits": outputs["pred_logits"],
        "alpha_raw_stride4": alpha[:, :, ::4, ::4],
        "alpha_raw_sum": alpha.sum((2, 3)),
        "alpha_clamped_sum": alpha.clamp(0, 1).sum((2, 3)),
        "trimap_logits_stride8_off3": trimap[:, :, 3::8, 3::8],
        "trimap_logits_sum": trimap.sum((2, 3)),
    }
    return {k: v.detach().double().numpy() for k, v in arrays.items()}


def compare(
    ours: dict[str, np.ndarray], golden: dict[str, np.ndarray]
) -> list[tuple[str, float, float, bool]]:
    """(name, largest difference, tolerance, within) per golden array; sums are compared relatively."""
    rows = []
    for name, ref in golden.items():
        ref = ref.astype(np.float64)
        got = ours[name]
        if got.shape[1:] != ref.shape[1:]:
            raise ValueError(f"{name}: ours {got.shape}, golden {ref.shape}")
        diff = np.abs(got - ref)  # broadcast over our batch
        if name in RELATIVE:
            err, tol = float((diff / np.maximum(np.abs(ref), 1e-12)).max()), RELATIVE[name]
        else:
            err, tol = float(diff.max()), ABSOLUTE[name]
        rows.append((name, err, tol, err <= tol))
    return rows


@torch.no_grad()
def run(
    weights: str | Path,
    image: str | Path,
    golden_path: str | Path,
    batch: int = 1,
    via_checkpoint: bool = False,
    batched: bool = False,
    dtype: torch.dtype = torch.float32,
) -> list[tuple[str, float, float, bool]]:
    """Convert `weights`, run our released layout on `image` (`batch` copies), compare with the golden file.

    `batched` keeps the guidance's batched sums (the default of `ReleaseE2EHIM`) instead of the release's
    float32 order (`release_rounding`), which the check uses by default. `dtype` float64 evaluates the same
    network nearly exactly (a diagnostic: how far the golden float32 values are from the function's value).
    """
    overrides = [f"model.net.release_rounding={not batched}"]
    if via_checkpoint:
        with tempfile.TemporaryDirectory() as tmp:
            module = load_module(convert(weights, Path(tmp) / "release.ckpt", overrides))
    else:
        module = build_release_module(release_run_config(overrides))
        expected = {k: v.shape for k, v in module.net.state_dict().items()}
        state = release_to_ours(load_release_state_dict(weights), expected)
        module.net.load_state_dict(state, strict=True)
    net = module.net.eval().to(dtype)
    x = read_fixture_image(image).repeat(batch, 1, 1, 1).to(dtype)
    golden = dict(np.load(golden_path))
    return compare(golden_arrays(net(x)), golden)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights")
    parser.add_argument("image")
    parser.add_argument("golden")
    parser.add_argument("--batch", type=int, default=1, help="copies of the image in one batch")
    parser.add_argument("--via-checkpoint", action="store_true", help="go through our checkpoint format")
    parser.add_argument(
        "--batched",
        action="store_true",
        help="the batched guidance sums instead of the release's float32 order",
    )
    parser.add_argument(
        "--float64", action="store_true", help="evaluate in float64 (the golden values' distance from exact)"
    )
    args = parser.parse_args(argv)
    dtype = torch.float64 if args.float64 else torch.float32
    rows = run(args.weights, args.image, args.golden, args.batch, args.via_checkpoint, args.batched, dtype)
    for name, err, tol, ok in rows:
        kind = "relative" if name in RELATIVE else "absolute"
        print(f"{name:28s} max {kind} difference {err:.3e}  (tolerance {tol:g})  {'ok' if ok else 'FAIL'}")
    failed = [name for name, *_, ok in rows if not ok]
    print("PASS" if not failed else f"FAIL: {', '.join(failed)}")
    if failed and not rounds_like_golden(rows):
        print(ROUNDING_NOTE)
    return 1 if failed else 0


ROUNDING_NOTE = (
    "note: the class logits are not bit-identical to the golden ones, so this CPU rounds float32 differently "
    "from the machine that made golden.npz; alpha_clamped_sum (a sum of a few alphas barely above 0) then "
    "misses by a few 1e-4 even for an exact port: compare with --float64"
)


def rounds_like_golden(rows: list[tuple[str, float, float, bool]]) -> bool:
    """Whether this machine reproduces the golden file's float32 rounding (class logits bit-identical)."""
    return next(err for name, err, *_ in rows if name == "class_logits") == 0.0


if __name__ == "__main__":
    sys.exit(main())
