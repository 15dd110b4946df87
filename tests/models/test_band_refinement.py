"""Band-only refinement of the released layout (models/release/band.py): the full-resolution stage on the
tiles that hold unknown pixels equals the whole-image stage there, and alpha_fin does not change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from e2e_him.models.release import band as band_module
from e2e_him.models.release.band import band_tiles, convs_on_tiles, stage_on_band


def release_stage() -> nn.Sequential:
    """The released refiner's full-resolution stage at a small width (two 3x3 convolutions, identities)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(11, 8, 3, padding=1), nn.Identity(), nn.Conv2d(8, 5, 3, padding=1)).eval()


def tile_mask(tiles: torch.Tensor, shape: tuple[int, int, int], tile: int) -> torch.Tensor:
    """(B, 1, H, W) float: 1 on the listed tiles."""
    mask = torch.zeros(shape[0], 1, *shape[1:])
    for b, r, c in tiles.tolist():
        mask[b, :, r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = 1
    return mask


def test_band_tiles_lists_the_tiles_that_hold_a_band_pixel():
    band = torch.zeros(2, 32, 48, dtype=torch.bool)
    band[0, 0, 0] = band[0, 31, 47] = band[1, 17, 20] = True
    assert band_tiles(band, 16).tolist() == [[0, 0, 0], [0, 1, 2], [1, 1, 1]]
    with pytest.raises(ValueError, match="multiples of the tile 16"):
        band_tiles(torch.zeros(1, 40, 32, dtype=torch.bool), 16)


@pytest.mark.parametrize("channels_last", [False, True])
@torch.no_grad()
def test_stage_on_tiles_equals_the_whole_image_stage_there_borders_included(channels_last):
    stage = release_stage()
    x = torch.randn(2, 11, 48, 64)
    band = torch.zeros(2, 48, 64, dtype=torch.bool)
    band[0, 0, 0] = band[0, 47, 63] = True  # corner tiles: the zero padding of both convolutions matters
    band[1, 20:30, 30] = True  # an inner stripe across two tiles
    tiles = band_tiles(band, 16)
    if channels_last:
        stage, x = (
            stage.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    out = convs_on_tiles(stage, x, tiles, 16)
    mask = tile_mask(tiles, (2, 48, 64), 16)
    assert 0 < mask.mean() < 0.5
    torch.testing.assert_close(out, stage(x) * mask, rtol=0, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)  # the layout oneDNN reads fastest
    empty = convs_on_tiles(stage, x, tiles[:0], 16)
    assert empty.shape == (2, 5, 48, 64) and not empty.any()


@torch.no_grad()
def test_a_band_on_most_tiles_runs_the_stage_on_the_whole_image(monkeypatch):
    stage, x = release_stage(), torch.randn(1, 11, 32, 32)
    band = torch.zeros(1, 32, 32, dtype=torch.bool)
    band[0, :20, 0] = True  # 2 of 4 tiles: at the share, tiles
    torch.testing.assert_close(
        stage_on_band(stage, x, band, 16), convs_on_tiles(stage, x, band_tiles(band, 16), 16)
    )
    band[0, 0, 20] = True  # 3 of 4 tiles: over the share, the whole image
    assert torch.equal(stage_on_band(stage, x, band, 16), stage(x))


def test_stages_that_are_not_local_are_refused():
    with pytest.raises(ValueError, match="3x3 convolutions and identities"):
        convs_on_tiles(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.GroupNorm(1, 3)),
                       torch.randn(1, 3, 16, 16), torch.zeros(1, 3, dtype=torch.long), 16)  # fmt: skip
    with pytest.raises(ValueError, match="3x3 convolutions and identities"):
        convs_on_tiles(nn.Sequential(nn.Conv2d(3, 3, 5, padding=2)), torch.randn(1, 3, 16, 16),
                       torch.zeros(1, 3, dtype=torch.long), 16)  # fmt: skip


@pytest.fixture(scope="module")
def release_net():
    from e2e_him.models.release.convert import build_release_module, release_run_config

    torch.manual_seed(0)
    return build_release_module(release_run_config()).net.eval()


@pytest.mark.slow
@torch.no_grad()
def test_released_network_alpha_fin_is_unchanged_by_band_refinement(release_net, monkeypatch):
    monkeypatch.setattr(
        band_module, "MAX_TILE_SHARE", 1.0
    )  # tiles even where the whole image would be cheaper
    image = torch.randn(2, 3, 96, 128)
    full = release_net(image, keep_scores_above=0.3)
    band = release_net(image, keep_scores_above=0.3, band_tile=32)
    torch.testing.assert_close(band["alpha_fin"], full["alpha_fin"], rtol=0, atol=1e-4)  # float32 rounding
    for key in ("pred_logits", "trimap_logits"):
        assert torch.equal(band[key], full[key])
    unknown = band["alpha_fin"][(band["alpha_fin"] > 0) & (band["alpha_fin"] < 1)]
    assert unknown.numel() > 0  # the comparison covers computed alphas, not only 0 and 1


@pytest.mark.slow
@torch.no_grad()
def test_released_network_skips_the_stage_where_no_pixel_is_unknown(release_net, monkeypatch):
    """Trimap biases that make every pixel background: no tile is computed and alpha_fin is 0, as without
    band refinement."""
    image = torch.randn(1, 3, 64, 64)
    calls = []
    monkeypatch.setattr(nn.Conv2d, "_conv_forward", _counting(nn.Conv2d._conv_forward, calls))
    kernels = release_net.perception.matting_kernels
    original = kernels.forward

    def background_trimaps(codes):
        out = original(codes)
        return {**out, "trimap_biases": out["trimap_biases"] + torch.tensor([1e4, -1e4, -1e4])}

    monkeypatch.setattr(kernels, "forward", background_trimaps)
    full = release_net(image)
    full_calls = len(calls)
    listed = []
    on_tiles = band_module.convs_on_tiles
    monkeypatch.setattr(
        band_module, "convs_on_tiles", lambda s, x, t, n: listed.append(len(t)) or on_tiles(s, x, t, n)
    )
    band = release_net(image, band_tile=32)
    assert listed == [0]  # the tile path ran, with no tile to compute
    assert not full["alpha_fin"].any() and not band["alpha_fin"].any()
    assert len(calls) - full_calls == full_calls - 2  # the band run skips the stage's two convolutions


def _counting(forward, calls):
    def counted(self, *args, **kwargs):
        calls.append(self)
        return forward(self, *args, **kwargs)

    return counted
