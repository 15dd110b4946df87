"""precision=mixed (bfloat16 in the alpha-only parts only) and band-only refinement through predict's
PyTorch backend."""

from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path

import pytest
import torch

from e2e_him.predictor.backends import TorchBackend
from e2e_him.predictor.mattes import build_backend
from e2e_him.predictor.precision import alpha_only_parts, bf16_in
from e2e_him.utils import hardware

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from model_builders import build_small_net


@pytest.fixture
def native(monkeypatch):
    """A CPU that reports AVX512-BF16 (autocast runs on any CPU; only the choice is mocked)."""
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(hardware, "_cpu_flags", lambda: {"avx512_bf16"})


@torch.no_grad()
def test_mixed_precision_keeps_class_and_trimap_logits_of_float32():
    torch.manual_seed(0)
    net, image = build_small_net().eval(), torch.randn(1, 3, 64, 64)
    fp32 = net(image)
    with bf16_in(alpha_only_parts(net)):
        mixed = net(image)
    for key in ("pred_logits", "trimap_logits"):
        assert torch.equal(mixed[key], fp32[key]), key  # not computed in bfloat16 at all
    assert mixed["alpha_pred"].dtype == torch.float32
    moved = (mixed["alpha_pred"] - fp32["alpha_pred"]).abs()
    assert 0 < moved.max() < 0.05  # the alpha features did run in bfloat16
    assert torch.equal(net(image)["alpha_pred"], fp32["alpha_pred"])  # and nothing stays patched


@pytest.mark.slow
@torch.no_grad()
def test_released_layout_alpha_only_parts_leave_class_and_trimap_logits_alone():
    from e2e_him.models.release.convert import build_release_module, release_run_config

    torch.manual_seed(0)
    net, image = build_release_module(release_run_config()).net.eval(), torch.randn(1, 3, 64, 96)
    fp32 = net(image)
    with bf16_in(alpha_only_parts(net)):
        mixed = net(image)
    for key in ("pred_logits", "trimap_logits"):
        assert torch.equal(mixed[key], fp32[key]), key
    assert 0 < (mixed["alpha_raw"] - fp32["alpha_raw"]).abs().max() < 0.1 * fp32["alpha_raw"].abs().max()


def test_mixed_precision_needs_a_network_that_names_its_alpha_only_parts(native):
    with pytest.raises(ValueError, match="alpha-only parts"):
        TorchBackend(torch.nn.Conv2d(3, 2, 1), precision="mixed")


def test_backend_runs_mixed_precision_where_bf16_is_native(native):
    torch.manual_seed(0)
    net, image = build_small_net().eval(), torch.randn(1, 3, 64, 64)
    fp32 = TorchBackend(copy.deepcopy(net), precision="fp32", channels_last=False)(image)
    backend = TorchBackend(copy.deepcopy(net), precision="mixed", channels_last=False)
    assert backend.precision == "mixed" and len(backend.parts) == 2
    mixed = backend(image)
    assert torch.equal(mixed["pred_logits"], fp32["pred_logits"])
    assert 0 < (mixed["alpha_fin"] - fp32["alpha_fin"]).abs().max() < 0.05


class Recorder(torch.nn.Module):
    """The output contract from a 1x1 convolution, recording the keyword arguments of each call."""

    supports_band_tile = True

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.calls = torch.nn.Conv2d(3, 2, 1), []

    def forward(self, x, keep_scores_above=None, band_tile=None):
        self.calls.append({"keep_scores_above": keep_scores_above, "band_tile": band_tile})
        maps = self.conv(x)
        return {"pred_logits": torch.stack([maps.mean((2, 3))] * 2, -1), "alpha_fin": maps.sigmoid()}


class Undeclared(Recorder):
    """Takes `band_tile` but does not declare it: the backend goes by the declaration, not the signature."""

    supports_band_tile = False


def test_band_tile_reaches_only_networks_that_declare_it(caplog):
    recorder, undeclared = Recorder(), Undeclared()
    TorchBackend(recorder, precision="fp32", band_tile=16)(torch.randn(1, 3, 32, 32), keep_scores_above=0.5)
    assert recorder.calls == [{"keep_scores_above": 0.5, "band_tile": 16}]
    TorchBackend(undeclared, precision="fp32", band_tile=16)(torch.randn(1, 3, 32, 32))
    assert undeclared.calls == [{"keep_scores_above": None, "band_tile": None}]
    with caplog.at_level(logging.INFO):
        plain = TorchBackend(build_small_net(), precision="fp32", band_tile=16)
    assert plain.band_tile is None and "refines the whole image" in caplog.text
    assert plain(torch.randn(1, 3, 64, 64))["alpha_fin"].shape == (1, 5, 64, 64)  # 5 queries


@pytest.mark.parametrize("tile", [0, -16, 24, 64, 16.0])
def test_a_band_tile_that_does_not_divide_the_input_multiple_is_refused_up_front(tile):
    for net in (Recorder(), build_small_net()):  # whether or not the layout skips tiles
        with pytest.raises(ValueError, match=r"must divide the input size multiple 32: one of \[1, 2, 4"):
            TorchBackend(net, precision="fp32", band_tile=tile)
    with pytest.raises(ValueError, match="band_tile must divide"):  # before the file is even opened
        build_backend("missing.onnx", backend="onnx", band_tile=tile)


def test_bf16_in_nests_and_restores_the_forwards():
    conv = torch.nn.Conv2d(3, 2, 1)
    with bf16_in([conv, conv]):
        with bf16_in([conv]):
            assert conv(torch.randn(1, 3, 4, 4)).dtype == torch.float32  # cast back to float32
        assert "forward" in conv.__dict__  # the outer wrapper is still in place
    assert "forward" not in conv.__dict__
