"""Ground-truth trimaps (e2e_him.data.trimap.trimap_from_alpha) on small cases checked by hand."""

from __future__ import annotations

import pytest
import torch

from e2e_him.data.trimap import BACKGROUND, FOREGROUND, UNKNOWN, trimap_from_alpha


def row(values: list[float], height: int = 3) -> torch.Tensor:
    """An image whose rows all equal `values` (so only horizontal structure matters)."""
    return torch.tensor(values).expand(height, -1).clone()


def test_soft_band_is_unknown_and_grows_with_the_kernel():
    alpha = row([1, 1, 1, 0.5, 0, 0, 0])
    # kernel 1: nothing is grown; only the soft pixel is unknown
    assert trimap_from_alpha(alpha, 1)[1].tolist() == [2, 2, 2, 1, 0, 0, 0]
    # kernel 3: foreground eroded by 1 (pixel 2 touches the soft pixel), reach of non-background dilated by 1
    assert trimap_from_alpha(alpha, 3)[1].tolist() == [2, 2, 1, 1, 1, 0, 0]
    # kernel 5: 2 pixels on each side
    assert trimap_from_alpha(alpha, 5)[1].tolist() == [2, 1, 1, 1, 1, 1, 0]


def test_binary_mask_gets_a_band_of_the_kernel_width():
    # 15x15 image, foreground square rows/cols 3..11 (9 px). Kernel 5 (radius 2): the band spans 2 px inside
    # (cols 3-4 and 10-11) and 2 px outside (cols 1-2 and 12-13): 4 = k - 1 pixels on each edge.
    alpha = torch.zeros(15, 15)
    alpha[3:12, 3:12] = 1.0
    t = trimap_from_alpha(alpha, 5)
    assert t[7].tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 1, 1, 1, 1, 0]
    assert (t == FOREGROUND).sum() == 5 * 5  # rows/cols 5..9
    assert (t == UNKNOWN).sum() == 13 * 13 - 5 * 5  # rows/cols 1..13 minus the core
    assert (t == BACKGROUND).sum() == 15 * 15 - 13 * 13


def test_foreground_touching_the_border_stays_foreground():
    assert (trimap_from_alpha(torch.ones(4, 4), 3) == FOREGROUND).all()
    # left half foreground: erosion only acts at the inner edge, not at the image border
    alpha = torch.zeros(4, 8)
    alpha[:, :4] = 1.0
    t = trimap_from_alpha(alpha, 3)
    assert t[0].tolist() == [2, 2, 2, 1, 1, 0, 0, 0]
    assert (t == t[0]).all()  # the top and bottom rows are not eroded either


@pytest.mark.parametrize(("even", "odd"), [(2, 3), (4, 5), (10, 11)])
def test_even_kernel_rounds_up(even, odd):
    g = torch.Generator().manual_seed(0)
    alpha = (torch.rand(2, 16, 16, generator=g) > 0.7).float() * torch.rand(2, 16, 16, generator=g)
    torch.testing.assert_close(trimap_from_alpha(alpha, even), trimap_from_alpha(alpha, odd))


def test_near_0_and_1_within_half_an_8bit_step():
    # 1/512 is half an 8-bit step: 0.001 counts as background, 0.999 as foreground
    t = trimap_from_alpha(torch.tensor([[0.001, 0.999, 0.01, 0.99]]), 1)
    assert t.tolist() == [[0, 2, 1, 1]]


def test_shapes_dtype_and_empty():
    alpha = torch.rand(2, 3, 8, 8)
    t = trimap_from_alpha(alpha, 3)
    assert t.shape == alpha.shape and t.dtype == torch.int64
    assert set(t.unique().tolist()) <= {0, 1, 2}
    assert trimap_from_alpha(torch.zeros(0, 8, 8), 5).shape == (0, 8, 8)  # an image without people
    assert (trimap_from_alpha(torch.zeros(5, 5), 3) == BACKGROUND).all()


@pytest.mark.parametrize("kernel", [3, 9, 25])
def test_cpu_dilation_equals_a_square_max_pool(kernel: int):
    """The CPU path (OpenCV) and the separable max-pool path give the square max-pool's trimaps exactly."""
    import torch.nn.functional as F

    from e2e_him.data import trimap

    g = torch.Generator().manual_seed(kernel)
    mask = F.avg_pool2d((torch.rand(1, 3, 40, 50, generator=g) > 0.97).float(), 5, 1, 2)[0] > 0
    square = F.max_pool2d(mask[:, None].float(), kernel, 1, kernel // 2)[:, 0] > 0.5
    assert torch.equal(trimap._dilate(mask, kernel), square)
    assert torch.equal(
        trimap._dilate(~mask, kernel),
        F.max_pool2d((~mask)[:, None].float(), kernel, 1, kernel // 2)[:, 0] > 0.5,
    )
    assert torch.equal(trimap._dilate_pool(mask, kernel), square)  # the path other devices take
    assert trimap._dilate(torch.zeros(0, 4, 4, dtype=torch.bool), kernel).shape == (0, 4, 4)


def test_argmax_masks_equal_argmax_including_ties():
    from e2e_him.data.trimap import trimap_argmax_masks

    logits = torch.randint(-2, 3, (500, 3)).float()  # many ties
    unknown, foreground = trimap_argmax_masks(logits, dim=1)
    assert torch.equal(unknown, logits.argmax(1) == UNKNOWN)
    assert torch.equal(foreground, logits.argmax(1) == FOREGROUND)
    unknown, _ = trimap_argmax_masks(logits.T.reshape(3, 50, 10), dim=0)
    assert torch.equal(unknown, (logits.argmax(1) == UNKNOWN).reshape(50, 10))
