"""Kaiming initialisation of the non-backbone weights (Section IV-B: "The other parameters are initialized
with the Kaiming initializer")."""

from __future__ import annotations

from torch import nn

from e2e_him.models.layers import StackedLinear


def kaiming_init(module: nn.Module) -> None:
    """Initialise every layer under `module` in place.

    - Conv2d: Kaiming normal, fan-out, ReLU gain (ResNet / torchvision habit); biases 0.
    - Linear, stacked linears and attention projections: Kaiming uniform with a = 1, i.e. fan-in and unit
      gain, variance-preserving for layers not followed by a ReLU (detectron2's `c2_xavier_fill`); biases 0.
    - GroupNorm / LayerNorm: weight 1, bias 0.
    - Embeddings (the learned queries) keep PyTorch's N(0, 1), as DETR.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=1)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, StackedLinear):
            for i in range(m.weight.shape[0]):  # (in, out) per stack: fan-in is the first axis
                nn.init.kaiming_uniform_(m.weight[i].T, a=1)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.MultiheadAttention):
            if m.in_proj_weight is not None:
                nn.init.kaiming_uniform_(m.in_proj_weight, a=1)
            if m.in_proj_bias is not None:
                nn.init.zeros_(m.in_proj_bias)
        elif isinstance(m, (nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
