"""Raw records -> samples (docs/contracts.md section 2): training augmentation and crop, eval resize and pad.

Training (Sec. IV-B): random horizontal flip and affine transform of the photo and all its mattes together,
then a random `crop_size` crop (padded bottom/right when the photo is smaller), then random contrast, gamma
and saturation changes of the photo only. Colour changes are applied after the crop because they act on each
pixel alone, so the order does not change what can come out and the crop is cheaper to recolour. All
randomness comes from the sample's own generator (`rng`), never from global state. Training samples leave
compact (8-bit photo and mattes, `data.targets`); the float targets and trimaps are made on the device.

Evaluation: the photo is resized keeping its aspect ratio (long side `eval_size`, or kept when None) and
padded bottom/right to a multiple of 32; `meta` keeps what is needed to map predictions back to the
original size.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from e2e_him.data.composite import resize_record, resize_stack, visible_instances
from e2e_him.data.targets import IMAGENET_MEAN, IMAGENET_STD, compact_sample
from e2e_him.data.trimap import trimap_from_alpha

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "EvalTransform", "TrainTransform", "normalize_image"]
SIZE_DIVISOR = 32


def normalize_image(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> float32 (3, H, W), ImageNet-normalised."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def pad_bottom_right(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-pad (..., h, w) to (..., H, W) at the bottom and right."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    return F.pad(x, (0, size[1] - w, 0, size[0] - h))


def _targets(alphas: np.ndarray, masks: np.ndarray | None, kernel: int) -> dict[str, torch.Tensor]:
    """alphas, masks, trimaps and labels of one sample from (K, h, w) mattes and optional bool masks."""
    a = torch.from_numpy(np.ascontiguousarray(alphas, dtype=np.float32)).clamp_(0.0, 1.0)
    m = torch.from_numpy(np.ascontiguousarray(masks)) if masks is not None else a >= 0.5
    trimaps = trimap_from_alpha(a, kernel) if len(a) else torch.zeros(a.shape, dtype=torch.long)
    return {
        "alphas": a,
        "masks": m.float(),
        "trimaps": trimaps,
        "labels": torch.ones(len(a), dtype=torch.long),
    }


def _pad_targets(t: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    for key in ("alphas", "masks", "trimaps"):
        t[key] = pad_bottom_right(t[key], size)
    return t


class TrainTransform:
    """Augment a raw record and crop it to a training sample (Sec. IV-B; defaults where the paper is silent).

    Args:
        crop_size: (H, W) of the training crop (paper: 640 x 640).
        flip_prob: probability of a horizontal flip.
        affine_prob: probability of an affine transform with `scale`, `rotate` (degrees), `translate`
            (fraction of the size) and `shear` (degrees) drawn uniformly from their ranges.
        contrast_prob, contrast_limit: random contrast factor in 1 +- limit.
        gamma_prob, gamma_limit: random gamma in [lo, hi] / 100.
        saturation_prob, saturation_limit: random saturation shift in +- limit (0-255 scale of HSV).
        resize_long_side: optional [lo, hi]: resize the photo so that its long side is uniform in [lo, hi]
            before the other transforms (None = the paper: crops are taken at the photo's own resolution).
        trimap_kernel: [lo, hi] range of the trimap kernel size, drawn per sample.
        min_visible_pixels, min_visible_fraction: people whose summed alpha in the crop is below either bound
            (the fraction is of their summed alpha before cropping) are dropped.
    """

    def __init__(
        self,
        crop_size: Sequence[int] = (640, 640),
        *,
        flip_prob: float = 0.5,
        affine_prob: float = 0.5,
        scale: Sequence[float] = (0.75, 1.25),
        rotate: Sequence[float] = (-20.0, 20.0),
        translate: Sequence[float] = (-0.1, 0.1),
        shear: Sequence[float] = (-10.0, 10.0),
        contrast_prob: float = 0.3,
        contrast_limit: float = 0.2,
        gamma_prob: float = 0.3,
        gamma_limit: Sequence[float] = (70.0, 130.0),
        saturation_prob: float = 0.3,
        saturation_limit: float = 30.0,
        resize_long_side: Sequence[int] | None = None,
        trimap_kernel: Sequence[int] = (7, 25),
        min_visible_pixels: float = 100.0,
        min_visible_fraction: float = 0.1,
    ):
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.resize_long_side = tuple(resize_long_side) if resize_long_side else None
        self.trimap_kernel = (int(trimap_kernel[0]), int(trimap_kernel[1]))
        self.min_visible_pixels = float(min_visible_pixels)
        self.min_visible_fraction = float(min_visible_fraction)
        linear = cv2.INTER_LINEAR
        self.geometric = A.Compose(
            [
                A.HorizontalFlip(p=flip_prob),
                A.Affine(
                    scale=tuple(scale),
                    rotate=tuple(rotate),
                    translate_percent=tuple(translate),
                    shear=tuple(shear),
                    interpolation=linear,
                    mask_interpolation=linear,  # mattes are soft: bilinear, like the photo
                    border_mode=cv2.BORDER_CONSTANT,
                    fill=0,
                    fill_mask=0,
                    p=affine_prob,
                ),
            ],
            p=1.0,
        )
        self.photometric = A.Compose(
            [
                A.RandomBrightnessContrast(
                    brightness_limit=0.0, contrast_limit=contrast_limit, p=contrast_prob
                ),
                A.RandomGamma(gamma_limit=tuple(gamma_limit), p=gamma_prob),
                A.HueSaturationValue(
                    hue_shift_limit=0, sat_shift_limit=saturation_limit, val_shift_limit=0, p=saturation_prob
                ),
            ],
            p=1.0,
        )

    @staticmethod
    def _seed(pipeline: A.Compose, rng: np.random.Generator) -> None:
        """Give an albumentations pipeline generators derived from the sample's `rng` (no global state)."""
        pipeline.set_random_state(
            np.random.default_rng(rng.integers(2**63)), random.Random(int(rng.integers(2**63)))
        )

    def draw_size(self, size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int] | None:
        """The (h, w) a photo of `size` (H, W) is resized to before augmentation, its long side drawn from
        `resize_long_side` (one draw from `rng`); None when photos keep their size (no draw)."""
        if self.resize_long_side is None:
            return None
        h0, w0 = size
        long_side = int(rng.integers(self.resize_long_side[0], self.resize_long_side[1] + 1))
        s = long_side / max(h0, w0)
        return max(1, round(h0 * s)), max(1, round(w0 * s))

    def __call__(self, record: dict, rng: np.random.Generator) -> dict:
        """Raw record -> compact training sample (contract 2, `data.targets`), cropped to `crop_size`."""
        orig_size = record["image"].shape[:2]
        size = self.draw_size(orig_size, rng)
        if size is not None:
            record = resize_record(record, size)
        return self.augment(record, rng, orig_size)

    def augment(self, record: dict, rng: np.random.Generator, orig_size: tuple[int, int]) -> dict:
        """A record already at the size `draw_size` gave -> compact training sample: flip and affine, crop,
        colour, trimap kernel (the draws after `draw_size`'s); `orig_size` is the photo's size on disk."""
        image, alphas, masks = record["image"], record["alphas"], record["masks"]
        k = len(alphas)
        maps = list(alphas) + (list(masks.astype(np.float32)) if masks is not None else [])
        self._seed(self.geometric, rng)
        out = self.geometric(image=image, masks=maps)
        image = out["image"]
        maps = np.stack(out["masks"]) if maps else np.zeros((0, *image.shape[:2]), np.float32)
        alphas, masks = maps[:k].clip(0.0, 1.0), (maps[k:] >= 0.5 if masks is not None else None)

        H, W = image.shape[:2]
        ch, cw = self.crop_size
        y0, x0 = int(rng.integers(0, max(H - ch, 0) + 1)), int(rng.integers(0, max(W - cw, 0) + 1))
        crop = (slice(y0, y0 + ch), slice(x0, x0 + cw))
        areas_before = alphas.sum((1, 2))
        image = image[crop]
        alphas = alphas[(slice(None), *crop)]
        masks = masks[(slice(None), *crop)] if masks is not None else None
        keep = visible_instances(
            alphas.sum((1, 2)), areas_before, self.min_visible_pixels, self.min_visible_fraction
        )
        alphas = alphas[keep]
        masks = masks[keep] if masks is not None else None

        self._seed(self.photometric, rng)
        image = self.photometric(image=np.ascontiguousarray(image))["image"]
        kernel = int(rng.integers(self.trimap_kernel[0], self.trimap_kernel[1] + 1))
        meta = {
            "name": record["name"],
            "orig_size": tuple(orig_size),
            "input_size": image.shape[:2],
            "orig_alphas": None,
            "trimap_kernel": kernel,
        }
        return compact_sample(image, alphas, masks, self.crop_size, meta)


def eval_input_size(size: tuple[int, int], eval_size: int | None) -> tuple[int, int]:
    """(h1, w1) of a photo of `size` (h0, w0) resized so that its long side is `eval_size` (None = kept)."""
    h0, w0 = size
    if eval_size is None:
        return h0, w0
    s = eval_size / max(h0, w0)
    return max(1, round(h0 * s)), max(1, round(w0 * s))


def padded_size(size: tuple[int, int], divisor: int = SIZE_DIVISOR) -> tuple[int, int]:
    """The smallest multiple of `divisor` on each side that holds `size`."""
    return tuple(-(-s // divisor) * divisor for s in size)


def prepare_eval_image(
    image: np.ndarray, eval_size: int | None = 640, name: str = ""
) -> tuple[torch.Tensor, dict]:
    """The evaluation preprocessing of a photo, also used by `predict` (no ground truth).

    Args:
        image: uint8 (H0, W0, 3) RGB photo.
        eval_size: long side after resizing, keeping the aspect ratio; None keeps the size.
        name: stored in the meta.

    Returns:
        float32 (3, H, W) ImageNet-normalised tensor, H and W multiples of 32, the photo at its top-left, and
        meta {"name", "orig_size": (h0, w0), "input_size": (h1, w1), "orig_alphas": None}.
    """
    h0, w0 = image.shape[:2]
    h1, w1 = eval_input_size((h0, w0), eval_size)
    if (h1, w1) != (h0, w0):
        interp = cv2.INTER_AREA if h1 < h0 else cv2.INTER_LINEAR
        image = cv2.resize(image, (w1, h1), interpolation=interp)
    tensor = pad_bottom_right(normalize_image(image), padded_size((h1, w1)))
    return tensor, {"name": name, "orig_size": (h0, w0), "input_size": (h1, w1), "orig_alphas": None}


class EvalTransform:
    """Raw record -> evaluation sample: resize keeping aspect, pad to a multiple of 32, keep original mattes.

    Args:
        eval_size: long side of the network input (None = the photo's own size). The paper does not say; 640
            matches the training crops.
        trimap_kernel: fixed trimap kernel size for the evaluation targets.
    """

    def __init__(self, eval_size: int | None = 640, trimap_kernel: int = 15):
        self.eval_size = eval_size
        self.trimap_kernel = int(trimap_kernel)

    def __call__(self, record: dict, rng: np.random.Generator | None = None) -> dict:
        """Raw record -> evaluation sample (contract 2); `rng` is unused (no randomness in evaluation)."""
        image_t, meta = prepare_eval_image(record["image"], self.eval_size, record["name"])
        alphas, masks = record["alphas"], record["masks"]
        size = meta["input_size"]
        orig = torch.from_numpy(np.round(alphas.clip(0.0, 1.0) * 255.0).astype(np.uint8))
        if size != meta["orig_size"]:
            alphas = resize_stack(alphas, size)
            masks = resize_stack(masks, size, nearest=True) if masks is not None else None
        sample = _pad_targets(_targets(alphas, masks, self.trimap_kernel), tuple(image_t.shape[-2:]))
        sample["image"] = image_t
        sample["meta"] = {**meta, "orig_alphas": orig}
        return sample
