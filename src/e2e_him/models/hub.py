"""Trained networks as Hugging Face Hub folders: written, read (from a folder or the Hub) and published.

A Hub folder holds three files and no pickle:

- `config.json`: the resolved model config the network is rebuilt from (`model`, as in a checkpoint of
  `e2e_him.train`), the run's data config (`data`; absolute paths removed), where the weights come from
  (`source`: converted from the authors' release, fine-tuned from another network, or trained here), the
  training facts of the checkpoint it was written from (`training`: step, epoch, file name) and the metrics
  its card reports (`metrics`, `metrics_note`).
- `model.safetensors`: the network's state dict (`net.` of the LightningModule, without the prefix).
- `README.md`: the generated model card (`models.model_card`), licence included.

`predict`, `eval`, `export` and `train init_weights=` read such a folder, or a Hub repository as
`hf://<user>/<repo>[@<revision>]`, fetched by huggingface_hub into its usual cache (offline, the cached copy).
`push_folder` uploads a folder with huggingface_hub's file API.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

HF_PREFIX = "hf://"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
FORMAT = 1  # config.json's `e2e_him_hub_format`


def is_hub_reference(ref: str | Path) -> bool:
    """Whether `ref` names a Hub folder: `hf://<user>/<repo>`, or a local folder (which `hub_folder` then
    checks for config.json and model.safetensors)."""
    text = str(ref)
    return text.startswith(HF_PREFIX) or Path(text).expanduser().is_dir()


def parse_hf_id(ref: str) -> tuple[str, str | None]:
    """`hf://<user>/<repo>[@<revision>]` -> (repo id, revision or None)."""
    repo, _, revision = ref[len(HF_PREFIX) :].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"{ref}: write hf://<user>/<repo>[@<revision>], e.g. hf://me/e2e-him-quickstart")
    return repo, revision or None


def hub_folder(ref: str | Path) -> Path:
    """The local folder of `ref`: a folder as given, or a Hub repository's files in the cache (fetched when
    missing; offline, a missing file is an error that names where the cache expects it)."""
    text = str(ref)
    if not text.startswith(HF_PREFIX):
        folder = Path(text).expanduser()
        missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: not a Hub folder of e2e_him (no {' or '.join(missing)})")
        return folder
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    repo_id, revision = parse_hf_id(text)
    paths = []
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        try:
            paths.append(Path(hf_hub_download(repo_id, name, revision=revision)))
        except LocalEntryNotFoundError as err:
            expected = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
            raise FileNotFoundError(
                f"{text}: {name} is not in the Hugging Face cache and cannot be downloaded here (offline or "
                f"no network). The cache expects it at {expected}/snapshots/<commit>/{name}; fetch the "
                f"repository where there is a network (`hf download {repo_id}`) and copy that folder here, "
                "or give a local Hub folder (ckpt_path=/path/to/folder)."
            ) from err
        except EntryNotFoundError as err:
            raise FileNotFoundError(
                f"{text}: the repository has no {name}; is it an e2e_him Hub folder?"
            ) from err
    if paths[0].parent != paths[1].parent:
        raise RuntimeError(f"{text}: {CONFIG_FILE} and {WEIGHTS_FILE} come from different commits")
    log.info("hub: %s -> %s", text, paths[0].parent)
    return paths[0].parent


def read_hub_config(ref: str | Path) -> dict[str, Any]:
    """config.json of a Hub folder or `hf://` repository."""
    config = json.loads((hub_folder(ref) / CONFIG_FILE).read_text())
    if not isinstance(config, Mapping) or not isinstance(config.get("model"), Mapping):
        raise ValueError(f"{ref}: {CONFIG_FILE} holds no model config; it was not written by e2e_him")
    return dict(config)


def read_hub_folder(ref: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config.json's content, the network's state dict) of a Hub folder or `hf://` repository."""
    from safetensors.torch import load_file

    return read_hub_config(ref), load_file(str(hub_folder(ref) / WEIGHTS_FILE))


def without_local_paths(tree: Any, keep_names: bool = False) -> Any:
    """`tree` with every absolute filesystem path set to None, or with `keep_names` to its file name (a
    published config names no one's disk)."""
    if isinstance(tree, Mapping):
        return {k: without_local_paths(v, keep_names) for k, v in tree.items()}
    if isinstance(tree, list):
        return [without_local_paths(v, keep_names) for v in tree]
    if isinstance(tree, str) and os.path.isabs(tree):
        return Path(tree).name if keep_names else None
    return tree


def public_config(run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a run config a Hub folder publishes (`model`, `data`, `source`), without local paths."""
    return {
        "model": without_local_paths(dict(run_config["model"])),
        "data": without_local_paths(dict(run_config.get("data") or {})),
        "source": without_local_paths(run_config.get("source"), keep_names=True),
    }


def write_hub_folder(
    folder: str | Path,
    net: torch.nn.Module,
    run_config: Mapping[str, Any],
    card: str,
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    metrics_note: str = "",
) -> Path:
    """Write `config.json`, `model.safetensors` and `README.md` of `net` into `folder`; returns it.

    A folder that holds other files is refused: publishing it would upload them too.
    """
    from safetensors.torch import save_file

    from e2e_him import __version__

    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder}: a Hub folder is a directory; this is a file")
    others = sorted(p.name for p in folder.iterdir() if p.name not in FILES) if folder.is_dir() else []
    if others:
        raise FileExistsError(f"{folder} holds other files ({', '.join(others[:5])}): choose an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "e2e_him_hub_format": FORMAT,
        "e2e_him_version": __version__,
        **public_config(run_config),
        "training": dict(training or {}),
        "metrics": dict(metrics) if metrics else None,
        "metrics_note": metrics_note,
    }
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt", "producer": "e2e_him"})
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (folder / CARD_FILE).write_text(card)
    return folder


def push_folder(folder: str | Path, repo_id: str, private: bool = False, commit_message: str = "") -> str:
    """Upload a Hub folder to the model repository `repo_id` (created if missing) with huggingface_hub's
    file API; returns the repository's URL. Needs a network and a token (`hf auth login` or HF_TOKEN)."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: not a complete Hub folder (no {', '.join(missing)})")
    api = HfApi()
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        allow_patterns=list(FILES),
        commit_message=commit_message or "Upload E2E-HIM network (e2e_him.export format=hub)",
    )
    return str(url)
