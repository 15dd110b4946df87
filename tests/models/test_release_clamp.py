"""The released layout's alpha clamp in training: the release's zero gradient outside [0, 1], or ours,
straight through (`ReleaseE2EHIM.from_config(straight_through_clamp=)`), with the same values either way."""

from __future__ import annotations

import pytest
import torch
from model_builders import build_small_release_net

from e2e_him.models.release import ReleaseE2EHIM


@pytest.fixture(scope="module")
def net() -> ReleaseE2EHIM:
    return build_small_release_net()


def run(net: ReleaseE2EHIM, monkeypatch, straight_through: bool, training: bool, alpha_shift: float):
    """alpha_pred, the gradient that an L1 loss towards 0.5 leaves on alpha_raw, and that loss's own gradient
    on alpha_pred, with every raw alpha moved by `alpha_shift` (through the kernel MLP's alpha bias, as
    training would move it)."""
    net.matting.straight_through_clamp = straight_through
    net.train(training)
    kernels = net.perception.matting_kernels
    original = kernels.forward

    def shifted(codes):
        out = original(codes)
        return {**out, "alpha_bias": out["alpha_bias"] + alpha_shift}

    with monkeypatch.context() as patch:
        patch.setattr(kernels, "forward", shifted)
        torch.manual_seed(1)
        out = net(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    out["alpha_raw"].retain_grad()
    (out["alpha_pred"] - 0.5).abs().mean().backward()
    net.zero_grad()
    pred = out["alpha_pred"].detach()
    return pred, out["alpha_raw"].grad, (pred - 0.5).sign() / pred.numel()


def test_a_raw_alpha_below_zero_everywhere_gets_a_gradient_only_straight_through(net, monkeypatch):
    release_pred, release_grad, _ = run(net, monkeypatch, False, training=True, alpha_shift=-1e4)
    ours_pred, ours_grad, loss_grad = run(net, monkeypatch, True, training=True, alpha_shift=-1e4)
    assert not release_pred.any() and torch.equal(ours_pred, release_pred)  # alpha 0 on every pixel, both
    assert not release_grad.any()  # the release's clamp: the alpha output cannot recover
    assert torch.equal(ours_grad, loss_grad) and (ours_grad < 0).all()  # straight through, pushed up


def test_straight_through_changes_no_value_and_nothing_at_inference(net, monkeypatch):
    release_pred, release_grad, _ = run(net, monkeypatch, False, training=True, alpha_shift=0.0)
    ours_pred, ours_grad, loss_grad = run(net, monkeypatch, True, training=True, alpha_shift=0.0)
    assert torch.equal(ours_pred, release_pred)  # the clamp's values, bit for bit
    inside = (release_pred > 0) & (release_pred < 1)
    assert inside.any() and (release_pred == 0).any() and (release_pred == 1).any()  # both edges are met
    assert torch.equal(release_grad, torch.where(inside, loss_grad, 0.0))  # the clamp's own gradient
    assert torch.equal(ours_grad, loss_grad)  # ours: the identity's, on both sides of the range too
    _, eval_grad, _ = run(net, monkeypatch, True, training=False, alpha_shift=-1e4)
    assert not eval_grad.any()  # in eval mode the switch is off: the release's clamp
