"""The one un-normalisation of the suite: a network input back to the photo, at its input or original size."""

from __future__ import annotations

import numpy as np

from e2e_him.data.transforms import normalize_image, prepare_eval_image
from e2e_him.visual.images import photo_of, shrink, unnormalize


def test_unnormalize_undoes_the_input_normalisation_and_crops_the_padding():
    photo = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    np.testing.assert_array_equal(unnormalize(normalize_image(photo)), photo)
    tensor, meta = prepare_eval_image(photo, None)  # padded to 64 x 64, the photo at its own size
    assert tensor.shape[-2:] == (64, 64)
    np.testing.assert_array_equal(unnormalize(tensor, meta["input_size"]), photo)


def test_photo_of_brings_a_resized_input_back_to_the_original_size():
    photo = np.full((100, 60, 3), 90, dtype=np.uint8)
    tensor, meta = prepare_eval_image(photo, 64)  # long side 100 -> 64
    back = photo_of(tensor, meta)
    assert back.shape == (100, 60, 3) and np.abs(back.astype(int) - 90).max() <= 1
    assert shrink(back, 50).shape == (50, 30, 3) and shrink(back, 200) is back
