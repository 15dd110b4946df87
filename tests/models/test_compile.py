"""The training forward compiles whole: no graph breaks in either layout (train mode, as `model.compile=true`
runs it), compiled outputs and gradients equal to eager ones, and the module's switch keeps the state dict."""

from __future__ import annotations

import pytest
import torch
from model_builders import build_small_net, build_small_release_net, training_batch

from e2e_him.losses import SetCriterion
from e2e_him.models.module import E2EHIMModule

LAYOUTS = {
    "paper": lambda: build_small_net("resnet18", perception={"dropout": 0.0}),
    "paper, Swin-T": lambda: build_small_net("swin_tiny", perception={"dropout": 0.0}),
    "paper, training aids": lambda: build_small_net(
        "resnet18",
        perception={
            "dropout": 0.0,
            "masked_attention": True,
            "mask_position_channels": 8,
            "person_head": True,
        },
        matting={"mask_prior": True},
    ),
    "released": lambda: build_small_release_net(straight_through_clamp=True),
}


def no_dropout(net: torch.nn.Module) -> torch.nn.Module:
    """Dropout draws differ between eager and compiled code: off, so that the outputs can be compared."""
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return net.train()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_training_forward_has_no_graph_break(layout):
    torch._dynamo.reset()
    explained = torch._dynamo.explain(LAYOUTS[layout]().train())(torch.randn(2, 3, 64, 64))
    assert explained.graph_break_count == 0, [str(r.reason) for r in explained.break_reasons]
    assert explained.graph_count == 1


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["paper", "released"])
def test_compiled_training_step_equals_eager(layout):
    """Dynamo's graph and AOT autograd's forward and backward (`backend="aot_eager"`: the graphs inductor
    compiles, run by eager kernels; inductor itself takes minutes per network on 2 CPU cores and is timed on
    a GPU by scripts/gpu_check.sh)."""
    torch._dynamo.reset()
    net = no_dropout(LAYOUTS[layout]())
    batch, criterion = training_batch(), SetCriterion()

    def step(forward):
        net.zero_grad(set_to_none=True)
        outputs = forward(batch["image"])
        loss = criterion(outputs, batch)["loss"]
        loss.backward()
        return outputs, loss, {n: p.grad.clone() for n, p in net.named_parameters()}

    eager_out, eager_loss, eager_grads = step(net)
    out, loss, grads = step(torch.compile(net, backend="aot_eager"))
    assert set(out) == set(eager_out) and "alpha_fin" not in out
    for key in ("pred_logits", "pred_masks", "trimap_logits", "alpha_pred"):
        torch.testing.assert_close(out[key], eager_out[key], rtol=1e-4, atol=1e-4, msg=key)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-4, atol=1e-5)
    # gradients to 1e-3 of each parameter's largest; those that are rounding noise (a convolution's bias
    # before a GroupNorm has gradient 0 in exact arithmetic) to 1e-5 of the network's largest
    largest = max(float(g.abs().max()) for g in eager_grads.values())
    for name, g in eager_grads.items():
        atol = max(1e-3 * float(g.abs().max()), 1e-5 * largest)
        torch.testing.assert_close(grads[name], g, rtol=0, atol=atol, msg=name)


def test_model_compile_switch_compiles_the_training_forward_only():
    net = build_small_net("resnet18")
    module = E2EHIMModule(
        net, SetCriterion(), torch.optim.AdamW, compile=True, compile_options={"backend": "eager"}
    )
    keys = list(module.state_dict())
    module.setup("fit")
    compiled = module.__dict__["_compiled_net"]
    assert compiled is not net and getattr(compiled, "_orig_mod", None) is net
    assert list(module.state_dict()) == keys  # the compiled wrapper is no sub-module: no second set of keys
    batch = training_batch()
    calls = []
    hook = net.register_forward_hook(lambda *a: calls.append(1))
    module.train()(batch["image"])  # forward(): the eager network, as validation and predict use it
    module.train_forward(batch["image"])
    hook.remove()
    assert len(calls) == 2  # the compiled function runs the same module (its hook fires under dynamo too)
    off = E2EHIMModule(build_small_net("resnet18"), SetCriterion(), torch.optim.AdamW)
    off.setup("fit")
    assert "_compiled_net" not in off.__dict__
