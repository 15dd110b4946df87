"""Where a backbone's ImageNet weights come from: `model.net.backbone.pretrained`.

- `null`: random initialisation, on purpose (the CPU smoke configs and the quickstart say so).
- `timm`: timm's weights `<name>.<pretrained_tag>`, the tag pinned in the backbone's config
  (conf/model/backbone/; why each tag: docs/weights.md), from their Hugging Face Hub repository.
- `hf-hub:<org>/<repo>[@<revision>]`: the `model.safetensors` of any Hub repository in timm's layout.
- anything else: a local file (.safetensors, .pth, .bin; a plain state dict, or one under `state_dict`).

Hub files are fetched by huggingface_hub into its usual cache (`HF_HOME`, `HF_HUB_CACHE`) and from there
loaded like a local file, with the same key accounting. Offline (`HF_HUB_OFFLINE=1`, or no network) a cached
copy is used; without one the run stops with one message that names the file, the place in the cache where
it is expected and the override for a deliberate run from random weights. Never a silent fallback.
`start_model_config` makes that check at the start of a training run, before any data is built.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HUB_PREFIX = "hf-hub:"
TIMM = "timm"
HUB_FILE = "model.safetensors"
RANDOM_OVERRIDE = "model.net.backbone.pretrained=null"


class BackboneWeightsError(FileNotFoundError):
    """The backbone's pretrained weights cannot be had; the message says what to do."""


def check_widths_take_weights(channels: Any, pretrained: str | None) -> None:
    """Stage widths of one's own (`channels`, ours) take no ImageNet weights: those fit timm's widths only."""
    if channels is not None and pretrained is not None:
        raise ValueError(
            f"backbone channels {list(channels)} with pretrained={pretrained!r}: ImageNet weights exist for "
            "timm's widths only; set model.net.backbone.channels=null or model.net.backbone.pretrained=null"
        )


@dataclass(frozen=True)
class HubFile:
    """One file of a Hugging Face Hub model repository."""

    repo_id: str
    filename: str = HUB_FILE
    revision: str | None = None

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}"


# backbones with no copy in timm or on the Hub that we know of: where their ImageNet weights are published
NO_HUB_COPY = {
    "ViTAEv2Backbone": (
        "ViTAEv2's ImageNet-1k weights are published by its authors through the links of "
        "github.com/ViTAE-Transformer/ViTAE-Transformer (no copy in timm or on the Hugging Face Hub that we "
        "know of): download ViTAEv2-S there."
    ),
}


def hub_file(
    pretrained: str, name: str | None = None, tag: str | None = None, owner: str = ""
) -> HubFile | None:
    """The Hub file that `pretrained` names (None for a local path).

    Args:
        pretrained: the config's value (not None).
        name: the backbone's timm model name (e.g. resnet50), for `timm`.
        tag: its pinned pretrained tag (e.g. tv_in1k), for `timm`.
        owner: the backbone's class name, to say where weights without a Hub copy are published.
    """
    if pretrained == TIMM:
        if not name or not tag:
            raise BackboneWeightsError(
                f"model.net.backbone.pretrained=timm: this backbone ({name or owner or 'not a timm model'}) "
                "has no Hub weights pinned in its config (pretrained_tag). "
                f"{NO_HUB_COPY.get(owner, 'Download its ImageNet weights.')} Give the file with "
                "model.net.backbone.pretrained=/path/to/file, or train from random weights on purpose with "
                f"{RANDOM_OVERRIDE} (docs/weights.md)."
            )
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(f"{name}.{tag}")
        if cfg is None or not cfg.hf_hub_id:
            raise BackboneWeightsError(
                f"model.net.backbone.pretrained=timm: timm knows no Hub weights {name}.{tag} "
                f"(model.net.backbone.pretrained_tag={tag})"
            )
        return HubFile(cfg.hf_hub_id, cfg.hf_hub_filename or HUB_FILE)
    if pretrained.startswith(HUB_PREFIX):
        repo, _, revision = pretrained[len(HUB_PREFIX) :].partition("@")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise BackboneWeightsError(
                f"model.net.backbone.pretrained={pretrained}: write hf-hub:<org>/<repo>[@<revision>], "
                "e.g. hf-hub:timm/resnet50.tv_in1k"
            )
        return HubFile(repo, HUB_FILE, revision or None)
    return None


def cache_location(file: HubFile) -> Path:
    """Where huggingface_hub's cache keeps `file`: `<cache>/models--<org>--<name>/snapshots/<commit>/<file>`,
    with `refs/<revision>` naming the commit."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / ("models--" + file.repo_id.replace("/", "--"))
    return folder / "snapshots" / "<commit>" / file.filename


def download(file: HubFile, label: str) -> str:
    """The local path of `file` (fetched into the cache if needed, else the cached copy)."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return hf_hub_download(file.repo_id, file.filename, revision=file.revision)
    except LocalEntryNotFoundError as err:
        revision = file.revision or "main"
        why = (
            "HF_HUB_OFFLINE is set"
            if getattr(constants, "HF_HUB_OFFLINE", False)
            else f"the Hub cannot be reached ({type(err.__cause__ or err).__name__})"
        )
        expected = cache_location(file)
        repo_folder = expected.parents[2]
        raise BackboneWeightsError(
            f"model.net.backbone.pretrained={label}: the backbone's pretrained weights, {file.filename} of "
            f"{file.url} (revision {revision}), are not in the Hugging Face cache and cannot be downloaded: "
            f"{why}. The cache expects them at {expected} (with {repo_folder / 'refs' / revision} naming "
            "the commit). Fetch them where there is a network "
            f"(`hf download {file.repo_id} {file.filename}`) and copy that cache's {repo_folder.name} "
            f"folder into {repo_folder.parent} (or point HF_HUB_CACHE at a copied cache), or give the file "
            "itself: "
            f"model.net.backbone.pretrained=/path/to/{file.filename}. To train from random weights on "
            f"purpose: {RANDOM_OVERRIDE}."
        ) from err
    except RepositoryNotFoundError as err:
        raise BackboneWeightsError(
            f"model.net.backbone.pretrained={label}: no repository {file.repo_id} on the Hub ({err})"
        ) from err
    except EntryNotFoundError as err:
        raise BackboneWeightsError(
            f"model.net.backbone.pretrained={label}: {file.url} has no {file.filename} (revision "
            f"{file.revision or 'main'})"
        ) from err


def resolve_pretrained(
    pretrained: str | Path | None, name: str | None = None, tag: str | None = None, owner: str = ""
) -> str | None:
    """The local file of `pretrained` (see the module docstring): a Hub source fetched or found in the cache,
    a local path that exists, None for None; else `BackboneWeightsError`."""
    if pretrained is None:
        return None
    source = str(pretrained)
    file = hub_file(source, name, tag, owner)
    if file is None:
        path = Path(source).expanduser()
        if not path.is_file():
            raise BackboneWeightsError(
                f"model.net.backbone.pretrained={source}: pretrained backbone weights not found: {path}. "
                "Give a local weights file, `timm` (the pinned Hub weights, docs/weights.md), "
                f"hf-hub:<org>/<repo>, or {RANDOM_OVERRIDE} to train from random weights on purpose."
            )
        return str(path)
    path = download(file, source)
    log.info("backbone: %s -> %s (%s of %s)", source, path, file.filename, file.url)
    return path


def start_model_config(model_cfg: Any, whole_network_from: str | None = None) -> Any:
    """The model config to build at the start of a training run, after fetching the backbone's weights.

    Fetches (or finds in the cache) the weights of `model_cfg.net.backbone.pretrained` now, so that a run
    without them stops here, before any data is built. When `whole_network_from` (init_weights, or a
    checkpoint to resume) gives every weight, the backbone's are not fetched at all: a copy of the config with
    `pretrained: null` is returned (the run's stored config keeps its own value).
    """
    backbone = (model_cfg.get("net") or {}).get("backbone")
    if backbone is None or backbone.get("pretrained") is None:
        return model_cfg
    if whole_network_from:
        log.info(
            "backbone: its pretrained weights (%s) are not loaded: %s gives every weight of the network",
            backbone.pretrained, whole_network_from,
        )  # fmt: skip
        model_cfg = copy.deepcopy(model_cfg)
        model_cfg.net.backbone.pretrained = None
        return model_cfg
    check_widths_take_weights(backbone.get("channels"), backbone.pretrained)
    owner = str(backbone.get("_target_", "")).rsplit(".", 1)[-1]
    resolve_pretrained(backbone.pretrained, backbone.get("name"), backbone.get("pretrained_tag"), owner)
    return model_cfg
