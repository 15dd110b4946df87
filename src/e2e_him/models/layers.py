"""Small building blocks shared by the sub-networks: GroupNorm convolutions, residual bottlenecks, MLPs, the
channel concatenation that feeds a convolution.

GroupNorm everywhere (Section III-A: the paper trains with one image per GPU, where BatchNorm fails).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= `max_groups` dividing `channels` (32 for 256 channels)."""
    return nn.GroupNorm(math.gcd(max_groups, channels), channels)


def cat_channels(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate feature maps (B, C_i, H, W) along channels for a convolution, in one dtype and layout.

    Under autocast the convolution casts its input to the autocast dtype anyway, so the maps are cast first:
    the same values, while a cat across dtypes (a bfloat16 map and the float32 image) or memory formats
    takes a slow elementwise path on CPU (several times slower; docs/benchmarks.md).
    The result is channels-last when any map is (the network runs channels-last then), else plain NCHW.
    """
    device = maps[0].device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    layout = torch.channels_last if any(map(is_channels_last, maps)) else torch.contiguous_format
    return torch.cat([m.to(dtype=dtype).contiguous(memory_format=layout) for m in maps], dim=1)


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether a 4-d map is stored channels-last (and not also plain contiguous, as 1-channel maps are)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def nchw_from_tokens(tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Tokens (B, H, W, C) -> a map (B, C, H, W) in the memory format of the map `like`: channels-last is the
    permuted view itself (no copy), plain NCHW one copy."""
    layout = torch.channels_last if is_channels_last(like) else torch.contiguous_format
    return tokens.permute(0, 3, 1, 2).contiguous(memory_format=layout)


ACTIVATIONS = ("relu", "leaky_relu")


def activation(name: str) -> nn.Module:
    """The activation called `name`: "relu" (in place) or "leaky_relu" (slope 0.01, in place)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(inplace=True)
    raise ValueError(f"unknown activation {name!r}; choose from {list(ACTIVATIONS)}")


class ConvGNAct(nn.Sequential):
    """Conv2d -> GroupNorm -> activation, padded to keep the size (divided by `stride`).

    Keys: `0` the convolution, `1` the GroupNorm, `2` the activation (no parameters).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: bool | str = True,
        max_gn_groups: int = 32,
        bias: bool = False,
        norm_groups: int | None = None,
    ) -> None:
        """Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size.
        stride: convolution stride.
        groups: convolution groups (stacked guidance heads use one group per head).
        act: True or "relu" appends a ReLU, "leaky_relu" a LeakyReLU, False nothing.
        max_gn_groups: GroupNorm groups (largest divisor of `out_channels` up to this); with `groups` > 1
            pass a multiple of `groups` so that no normalisation group spans two convolution groups.
        bias: give the convolution a bias (the authors' release does, before every GroupNorm).
        norm_groups: an exact GroupNorm group count, instead of the `max_gn_groups` rule.
        """
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=bias
            ),
            nn.GroupNorm(norm_groups, out_channels)
            if norm_groups
            else group_norm(out_channels, max_gn_groups),
        ]
        if act:
            layers.append(activation("relu" if act is True else act))
        super().__init__(*layers)


class Bottleneck(nn.Module):
    """ResNet bottleneck with GroupNorm: 1x1 reduce -> 3x3 -> 1x1 expand, plus the identity, then activation.

    The defaults are ResNet's (no conv biases, ReLU everywhere, GroupNorm of up to 32 groups). The authors'
    release uses the same block with `bias=True`, `channels_per_group=32` (GroupNorm groups of 32 channels)
    and LeakyReLU after the 3x3 convolution and after the sum (`mid_act`, `out_act`).
    """

    def __init__(
        self,
        channels: int,
        mid_channels: int | None = None,
        bias: bool = False,
        channels_per_group: int | None = None,
        mid_act: str = "relu",
        out_act: str = "relu",
    ) -> None:
        """Args:
        channels: input = output channels.
        mid_channels: the bottleneck width (channels // 4 when None, ResNet's expansion of 4).
        bias: biases in the three convolutions.
        channels_per_group: GroupNorm groups of this many channels (None: up to 32 groups).
        mid_act: activation after the 3x3 convolution.
        out_act: activation after the residual sum.
        """
        super().__init__()
        mid = mid_channels or channels // 4

        def groups(c: int) -> int | None:
            return c // channels_per_group if channels_per_group else None

        self.body = nn.Sequential(
            ConvGNAct(channels, mid, 1, bias=bias, norm_groups=groups(mid)),
            ConvGNAct(mid, mid, 3, act=mid_act, bias=bias, norm_groups=groups(mid)),
            ConvGNAct(mid, channels, 1, act=False, bias=bias, norm_groups=groups(channels)),
        )
        self.act = activation(out_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class MLP(nn.Module):
    """`num_layers` linear layers with ReLU between them (DETR's MLP).

    `make_layer(index, in_dim, out_dim)` builds each layer (`nn.Linear` by default; `StackedMLP` passes
    stacked ones).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int,
        make_layer: Callable[[int, int, int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"an MLP needs at least one layer, got num_layers={num_layers}")
        make_layer = make_layer or (lambda index, a, b: nn.Linear(a, b))
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(make_layer(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(dims)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class StackedLinear(nn.Module):
    """`num_stacks` independent linear layers applied at once: (..., [S,] N, in) -> (..., S, N, out).

    With `shared_input` the input has no stack axis and every stack reads the same tensor (the first layer
    of per-head MLPs that all read the latent codes X). Weights are (S, in, out); the biases are stored flat,
    (S * out,), so that optimiser rules for 1-D parameters (no weight decay on biases) apply to them.
    """

    def __init__(self, num_stacks: int, in_dim: int, out_dim: int, shared_input: bool = False) -> None:
        super().__init__()
        self.shared_input = shared_input
        self.weight = nn.Parameter(torch.empty(num_stacks, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(num_stacks * out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's nn.Linear default, per stack (overridden by models.init.kaiming_init)."""
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shared_input:
            y = torch.einsum("bni,sio->bsno", x, self.weight)  # (B, S, N, out)
        else:
            y = torch.einsum("bsni,sio->bsno", x, self.weight)
        return y + self.bias.view(self.weight.shape[0], 1, -1)


class StackedMLP(MLP):
    """`num_stacks` independent MLPs reading the same input: (B, N, in) -> (B, S, N, out), no loop over S."""

    def __init__(self, num_stacks: int, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__(
            in_dim,
            hidden_dim,
            out_dim,
            num_layers,
            make_layer=lambda index, a, b: StackedLinear(num_stacks, a, b, shared_input=index == 0),
        )
