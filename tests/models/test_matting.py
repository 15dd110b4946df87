"""Instance matting network: Eq. 6-8, the U-Net at odd sizes, the refiner's outputs."""

from __future__ import annotations

import torch

from e2e_him.models.fusion import UNetFusion
from e2e_him.models.matting_head import InstanceMattingNetwork, fuse_alpha
from e2e_him.models.refiner import Refiner


def test_eq8_by_hand():
    alpha = torch.tensor([[0.3, 0.4], [0.5, 0.6]]).view(1, 1, 2, 2)
    labels = torch.tensor([[0, 1], [2, 1]])  # bg, unknown / fg, unknown
    logits = torch.nn.functional.one_hot(labels, 3).permute(2, 0, 1).float().view(1, 1, 3, 2, 2) * 5
    # alpha_fin = alpha * U + F: [[0.3 * 0 + 0, 0.4 * 1 + 0], [0.5 * 0 + 1, 0.6 * 1 + 0]]
    torch.testing.assert_close(
        fuse_alpha(alpha, logits), torch.tensor([[0.0, 0.4], [1.0, 0.6]]).view(1, 1, 2, 2)
    )


def test_eq8_upsamples_the_trimap_bilinearly():
    # a 1x2 trimap whose "foreground" score rises left to right, upsampled to 1x4: bilinear interpolation
    # (align_corners=False) samples the source at x = -0.25, 0.25, 0.75, 1.25, clamped to [0, 1].
    logits = torch.zeros(1, 1, 3, 1, 2)
    logits[0, 0, 0] = 0.5  # background everywhere at 0.5
    logits[0, 0, 2, 0] = torch.tensor([0.0, 1.0])  # foreground 0 then 1
    fin = fuse_alpha(torch.full((1, 1, 1, 4), 0.7), logits)
    # fg logits after upsampling: [0, 0.25, 0.75, 1] -> argmax bg, bg, fg, fg
    torch.testing.assert_close(fin, torch.tensor([0.0, 0.0, 1.0, 1.0]).view(1, 1, 1, 4))


def test_unet_handles_odd_sizes():
    net = UNetFusion(12, widths=(8, 16, 32, 32))
    out = net(torch.randn(2, 12, 11, 5))  # pooled to 6x3, 3x2, 2x1
    assert out.shape == (2, 8, 11, 5)
    assert [m[0][0].in_channels for m in net.up] == [64, 48, 24]  # deep + skip widths


def test_refiner_outputs_and_low_level_inputs():
    refiner = Refiner(16, widths=(12, 10, 8), skip_channels=(6, 4, 3), trimap_channels=5, alpha_channels=7)
    x = torch.randn(1, 16, 4, 6)
    low = [torch.randn(1, 6, 8, 12), torch.randn(1, 4, 16, 24), torch.randn(1, 3, 32, 48)]
    trimap, alpha = refiner(x, low)
    assert trimap.shape == (1, 5, 16, 24) and alpha.shape == (1, 7, 32, 48)
    # the image reaches F_alpha: changing it changes F_alpha but not F_tri (computed at H/2 before the image)
    low2 = [*low[:2], torch.randn(1, 3, 32, 48)]
    trimap2, alpha2 = refiner(x, low2)
    torch.testing.assert_close(trimap2, trimap)
    assert not torch.allclose(alpha2, alpha)
    # without low-level features none of them matters
    plain = Refiner(16, widths=(12, 10, 8), skip_channels=(6, 4, 3), use_low_level=False)
    torch.testing.assert_close(plain(x, low)[1], plain(x, [torch.zeros_like(t) for t in low])[1])


def test_eq6_eq7_dynamic_decoders():
    torch.manual_seed(0)
    net = InstanceMattingNetwork(
        hidden_dim=16, guidance_channels=8, stem_channels=(4, 6), fusion_widths=(8, 16),
        refiner_widths=(8, 8, 8), trimap_channels=5, alpha_channels=6, kernel_hidden_dim=16,
    ).eval()  # fmt: skip
    codes = torch.randn(1, 3, 16)
    f_tri, f_alpha = torch.randn(1, 5, 2, 2), torch.randn(1, 6, 4, 4)
    with torch.no_grad():
        trimap = net.predict_trimaps(f_tri, codes)
        alpha = net.predict_alpha(f_alpha, codes)
        k_tri, b_tri = net.trimap_kernels(codes)
        k_a, b_a = net.alpha_kernels(codes)
    assert trimap.shape == (1, 3, 3, 2, 2) and alpha.shape == (1, 3, 4, 4)
    # query 2, class 1 (unknown), pixel (1, 0): k . F_tri + b
    torch.testing.assert_close(
        trimap[0, 2, 1, 1, 0], (k_tri[0, 2, 1] * f_tri[0, :, 1, 0]).sum() + b_tri[0, 2, 1]
    )
    torch.testing.assert_close(
        alpha[0, 0, 3, 2], torch.sigmoid((k_a[0, 0, 0] * f_alpha[0, :, 3, 2]).sum() + b_a[0, 0, 0])
    )
    # the whole network: shapes from the inputs' sizes alone
    image, half, quarter = torch.randn(1, 3, 32, 32), torch.randn(1, 4, 16, 16), torch.randn(1, 6, 8, 8)
    with torch.no_grad():
        out = net(image, (half, quarter), torch.randn(1, 16, 4, 4), torch.randn(1, 8, 4, 4), codes)
    assert out["trimap_logits"].shape == (1, 3, 3, 16, 16)
    assert out["alpha_pred"].shape == out["alpha_fin"].shape == (1, 3, 32, 32)
