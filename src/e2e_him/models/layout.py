"""`NetworkLayout`: the contract of an E2E-HIM network layout, like the backbones' (models/backbones): the
paper's (`E2EHIM`) and the authors' released one (`ReleaseE2EHIM`) are both a deep stem, a backbone and three
sub-networks (perception, guidance, matting), built from one config node each, with the outputs of
docs/contracts.md section 3 and their capabilities declared, not read from their signatures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from e2e_him.models.backbones import validate_backbone

SIZE_MULTIPLE = 32


class NetworkLayout(nn.Module):
    """stem -> backbone -> perception -> guidance -> matting; subclasses build the parts (`build_parts`) and
    run them (`forward`).

    Declared capabilities (class attributes; predict's backend reads them):
        size_multiple: H and W of every input are multiples of this.
        supports_band_tile: `forward` takes `band_tile` (the refiner's last stage on the unknown band only).
    """

    size_multiple = SIZE_MULTIPLE
    supports_band_tile = False

    def __init__(
        self,
        backbone: nn.Module,
        stem: nn.Module,
        perception: nn.Module,
        guidance: nn.Module | None,
        matting: nn.Module,
    ) -> None:
        super().__init__()
        validate_backbone(backbone)
        self.stem = stem
        self.backbone = backbone
        self.perception = perception
        self.guidance = guidance
        self.matting = matting

    @classmethod
    def from_config(
        cls,
        backbone: nn.Module,
        stem: Mapping[str, Any] | None = None,
        perception: Mapping[str, Any] | None = None,
        guidance: Mapping[str, Any] | None = None,
        matting: Mapping[str, Any] | None = None,
        hidden_dim: int = 256,
        kernel_hidden_dim: int = 512,
        kernel_layers: int = 3,
        **options: Any,
    ) -> NetworkLayout:
        """The network from one config node per sub-network (conf/model/*.yaml's `net`): each node holds the
        keyword arguments of its sub-network; what they share is given here, and what they read from each
        other (the backbone's and the stem's widths, the guidance width) `build_parts` passes on.

        Args:
            backbone: the built backbone (models/backbones contract).
            stem, perception, guidance, matting: the sub-networks' nodes (the layout's `build_parts`).
            hidden_dim: C, the width of F_dc, X and the transformer.
            kernel_hidden_dim: hidden width of every kernel MLP of the latent codes (release: 512).
            kernel_layers: depth of those MLPs (release: 3).
            options: the layout's own switches (`build_parts`).
        """
        validate_backbone(backbone)
        shared = {
            "hidden_dim": hidden_dim,
            "kernel_hidden_dim": kernel_hidden_dim,
            "kernel_layers": kernel_layers,
        }
        nodes = {"stem": stem, "perception": perception, "guidance": guidance, "matting": matting}
        nodes = {name: dict(node or {}) for name, node in nodes.items()}
        return cls(backbone, *cls.build_parts(backbone, nodes, shared, **options))

    @classmethod
    def build_parts(
        cls, backbone: nn.Module, nodes: dict[str, dict[str, Any]], shared: dict[str, Any]
    ) -> tuple:
        """(stem, perception, guidance, matting), built from their `nodes` (by name) and `shared` widths."""
        raise NotImplementedError

    @property
    def num_queries(self) -> int:
        return self.perception.num_queries

    def alpha_only_parts(self) -> list[nn.Module]:
        """The sub-modules whose outputs reach alpha_pred alone, not the class or trimap logits (predict's
        `precision=mixed` runs them in bfloat16)."""
        raise NotImplementedError

    def check_input(self, image: torch.Tensor) -> None:
        """Refuse an input whose H or W is not a multiple of `size_multiple`, naming the layout."""
        h, w = image.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(
                f"{type(self).__name__} needs H and W multiples of {self.size_multiple}, got {h}x{w}"
            )
