"""The authors' released weights <-> the released layout (`ReleaseE2EHIM`), key for key, strictly.

The authors' file (a state dict of their `E2EHIMST`, possibly wrapped in {"state_dict": ...} or saved from
DataParallel with a `module.` prefix) is read with `torch.load(weights_only=True)`, so no pickled code can
run. Every one of its keys maps to exactly one key of `ReleaseE2EHIM` (`release_rules`) and back; a key of
the file that maps to nothing, a key of ours that the file lacks, or a shape that differs is an error that
names it. The 12 `relative_position_index` buffers of their Swin are computed by the network (timm makes the
same ones): they are checked, not loaded, and written back by `ours_to_release`. `python -m
e2e_him.convert_release` writes the result as a checkpoint of this project.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor

from e2e_him.models.release.network import nest_flat_key
from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build, plain_config

SWIN_DEPTHS = (2, 2, 6, 2)
DECODER_LAYERS = 6
_INDEX = re.compile(r"^trans\.layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_index$")
# Patterns of the release's nn.Sequential stacks: "cga" = conv, GroupNorm, activation (3 entries; ours: one
# ConvGNAct); "res" = a residual block (ours: Bottleneck); "drop" = dropout; "bare": the stack is a ConvGNAct.
_STACKS: dict[str, tuple[str, Sequence[str]]] = {
    "toplayer": ("context_proj", ("bare",)),
    "c32m": ("feature_decoder.top", ("bare",)),
    "c16m": ("feature_decoder.mid", ("cga", "res", "res")),
    "c8m": ("feature_decoder.out", ("cga", "res", "res", "cga")),
    "c8d": ("fusion.enter8", ("cga", "res", "res")),
    "c8d2": ("fusion.down16", ("bare",)),
    "c16": ("fusion.fuse16", ("cga", "res", "res")),
    "c16d": ("fusion.down32", ("bare",)),
    "c32": ("fusion.fuse32", ("cga", "res")),
    "c32b": ("fusion.out32", ("cga", "res", "res")),
    "c16u": ("fusion.up16", ("cga", "res", "res")),
    "c8": ("fusion.up8", ("cga", "res", "res")),
    "c8d3": ("trimap_features", ("cga", "drop", "cga")),
    "c4": ("refiner.stage4", ("cga", "res", "res", "res")),
    "c2": ("refiner.stage2", ("cga", "cga")),
    "pre_conv": ("stem.layers_h2", ("cga", "cga")),
}
# The release's residual block (`RESBASEE.in_conv1`) -> our Bottleneck.
_RESIDUAL = (
    ("in_conv1.0.", "body.0.0."), ("in_conv1.1.gn.", "body.0.1."), ("in_conv1.3.", "body.1.0."),
    ("in_conv1.4.gn.", "body.1.1."), ("in_conv1.6.", "body.2.0."), ("in_conv1.7.gn.", "body.2.1."),
)  # fmt: skip


class ReleaseKeyError(KeyError):
    """The release file and the released layout do not correspond key for key; the message lists why."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _stack_rules(release: str, ours: str, pattern: Sequence[str]) -> list[tuple[str, str]]:
    if pattern == ("bare",):
        return [(f"{release}.0.", f"{ours}.0."), (f"{release}.1.", f"{ours}.1.")]
    rules, i = [], 0
    for j, kind in enumerate(pattern):
        if kind == "cga":
            rules += [(f"{release}.{i}.", f"{ours}.{j}.0."), (f"{release}.{i + 1}.", f"{ours}.{j}.1.")]
            i += 3
        elif kind == "res":
            rules += [(f"{release}.{i}.{a}", f"{ours}.{j}.{b}") for a, b in _RESIDUAL]
            i += 1
        else:  # "drop": no parameters
            i += 1
    return rules


def release_rules(decoder_layers: int = DECODER_LAYERS, swin_depths: Sequence[int] = SWIN_DEPTHS):
    """(release key prefix, our key prefix) pairs that rename every key of the release's state dict (our
    prefixes written as the parts' names, placed in their sub-networks by `nest_flat_key`)."""
    rules = [("res1.0.", "stem.layers_h2.2.0."), ("res1.1.", "stem.layers_h2.2.1."),
             ("ds1.0.", "stem.layer_h4.0."), ("ds1.1.", "stem.layer_h4.1."),
             ("trans.patch_embed.", "backbone.body.patch_embed."),
             ("decoder1.norm.0.", "decoder.norm."), ("query_embed.", "query_embed."),
             ("globalfcnum.", "class_head."), ("globalfc.", "perception_kernels.mlp."),
             ("globalfc2.", "matting_kernels.mlp."), ("globalfck.layers.0.", "guidance.semantics."),
             ("pam.query_conv.", "fusion.attention.query."), ("pam.key_conv.", "fusion.attention.key."),
             ("pam.value_conv.", "fusion.attention.value."), ("pam.gamma", "fusion.attention.gamma"),
             ("c1.0.", "refiner.stage1.0."), ("c1.2.", "refiner.stage1.2."),
             ("conv1.", "unused.conv1."), ("conv2.", "unused.conv2.")]  # fmt: skip
    for head in (1, 2):
        rules += [(f"c1t{head}.", f"guidance.background_weight.{head - 1}."),
                  (f"otherwright{head}.0.", f"guidance.background_features.{head - 1}."),
                  (f"g{head}.", f"guidance.norms.{head - 1}.")]  # fmt: skip
    for stage in range(len(swin_depths)):
        rules.append((f"trans.layers.{stage}.blocks.", f"backbone.body.layers.{stage}.blocks."))
        rules.append((f"trans.norm{stage}.", f"backbone.out_norms.{stage}."))
        if stage + 1 < len(
            swin_depths
        ):  # theirs ends stage i with the merge; timm starts stage i + 1 with it
            rules.append(
                (f"trans.layers.{stage}.downsample.", f"backbone.body.layers.{stage + 1}.downsample.")
            )
    for layer in range(decoder_layers):
        a, b = f"decoder1.layers.{layer}.", f"decoder.layers.{layer}."
        rules += [(f"{a}self_attn.", f"{b}self_attn."), (f"{a}multihead_attn.", f"{b}cross_attn."),
                  (f"{a}linear1.", f"{b}ffn.0."), (f"{a}linear2.", f"{b}ffn.3.")]  # fmt: skip
        rules += [(f"{a}norm{k}.", f"{b}norm{k}.") for k in (1, 2, 3)]
    for release, (ours, pattern) in _STACKS.items():
        rules += _stack_rules(release, ours, pattern)
    return [(theirs, nest_flat_key(ours)) for theirs, ours in rules]


def _rename(key: str, rules: Sequence[tuple[str, str]]) -> str | None:
    """`key` renamed by the rule with the longest matching prefix, or None."""
    best = max((r for r in rules if key.startswith(r[0])), key=lambda r: len(r[0]), default=None)
    return None if best is None else best[1] + key[len(best[0]) :]


def relative_position_index(window: int = 7) -> Tensor:
    """Swin's (window^2, window^2) relative-position index of a square window (int64)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def unwrap_state_dict(obj: Any, source: str = "the file") -> dict[str, Tensor]:
    """A plain state dict from what torch.load returned: {"state_dict"|"model"|"net": ...} unwrapped and a
    `module.` prefix (DataParallel) removed."""
    for key in ("state_dict", "model", "net"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{source}: not a state dict of tensors (got {type(obj).__name__})")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_release_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The authors' state dict from `path`, read with `weights_only=True` (no code in the file can run)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"release weights not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path}: not a PyTorch weights file that loads with weights_only=True ({err})"
        ) from err
    return unwrap_state_dict(obj, str(path))


def release_to_ours(release: Mapping[str, Tensor], expected: Mapping[str, torch.Size]) -> dict[str, Tensor]:
    """Rename the release's state dict to `ReleaseE2EHIM`'s keys, strictly.

    Args:
        release: the release's state dict.
        expected: our key -> shape (`model.state_dict()`'s shapes).

    Raises:
        ReleaseKeyError: listing every release key that maps to nothing or to a key we lack, every key of
            ours that no release key fills, every shape that differs and every unexpected index buffer.
    """
    rules = release_rules()
    out: dict[str, Tensor] = {}
    problems: list[str] = []
    for key, value in release.items():
        if _INDEX.match(key):
            if not torch.equal(value.long(), relative_position_index(round(value.shape[0] ** 0.5))):
                problems.append(f"{key}: differs from Swin's relative-position index")
            continue
        ours = _rename(key, rules)
        if ours is None or ours not in expected:
            problems.append(f"unexpected key in the release file: {key}" + (f" (-> {ours})" if ours else ""))
        elif tuple(value.shape) != tuple(expected[ours]):
            problems.append(
                f"shape of {key}: {tuple(value.shape)} in the file, {tuple(expected[ours])} in {ours}"
            )
        elif ours in out:
            problems.append(f"two release keys map onto {ours}")
        else:
            out[ours] = value
    problems += [f"missing from the release file: our {k}" for k in expected if k not in out]
    if problems:
        raise ReleaseKeyError(f"{len(problems)} key problem(s):\n  " + "\n  ".join(problems))
    return out


def ours_to_release(ours: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of `release_to_ours`: our released-layout state dict under the release's keys, with the
    relative-position index buffers that their Swin stores."""
    inverse = [(b, a) for a, b in release_rules()]
    out: dict[str, Tensor] = {}
    for key, value in ours.items():
        theirs = _rename(key, inverse)
        if theirs is None:
            raise ReleaseKeyError(f"our key {key} has no counterpart in the release's state dict")
        out[theirs] = value
    index = relative_position_index()
    for stage, depth in enumerate(SWIN_DEPTHS):
        for block in range(depth):
            out[f"trans.layers.{stage}.blocks.{block}.attn.relative_position_index"] = index.clone()
    return out


def release_run_config(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The model and data configs stored in a converted checkpoint (`experiment=release_swint`)."""
    cfg = compose_config("train", ["experiment=release_swint", "trainer=cpu", *overrides])
    return {"model": plain_config(cfg.model), "data": plain_config(cfg.data)}


def build_release_module(run_config: Mapping[str, Any]):
    """The `E2EHIMModule` with a `ReleaseE2EHIM` network described by `run_config["model"]`."""
    return build(OmegaConf.create(dict(run_config["model"])), "model (released layout)")


def module_from_release(obj: Any, source: str = "the file", overrides: Sequence[str] = ()):
    """An `E2EHIMModule` in the released layout holding the release's weights `obj` (what torch.load gave),
    with `run_config` set (its `source` names the file `source`); a file that is not the release's is refused
    with the names of its wrong keys."""
    release = unwrap_state_dict(obj, source)
    run_config = release_run_config(overrides)
    module = build_release_module(run_config)
    try:
        net_state = release_to_ours(release, {k: v.shape for k, v in module.net.state_dict().items()})
    except ReleaseKeyError as err:
        raise ValueError(
            f"{source}: neither a checkpoint of this project nor the authors' release: {err}"
        ) from err
    module.net.load_state_dict(net_state, strict=True)
    # the weights' origin travels with them (their authors' terms: models.checkpoint.derives_from_release)
    module.run_config = {
        **run_config,
        "source": {"converted_from": Path(source).name, "layout": "release_swint"},
    }
    return module
