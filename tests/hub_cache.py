"""A fake Hugging Face Hub cache in a temporary folder, laid out as huggingface_hub reads it offline:
`<cache>/models--<org>--<name>/refs/<revision>` holding a commit hash and
`<cache>/models--<org>--<name>/snapshots/<hash>/<file>` holding the files. No network is involved."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch


def fake_hub_repo(
    cache: Path, repo_id: str, files: Mapping[str, Path | dict[str, torch.Tensor]], revision: str = "main"
) -> Path:
    """Put `files` (name -> a file to copy, or a state dict written as safetensors) into the cache as the
    `revision` of `repo_id`; returns the snapshot folder."""
    from safetensors.torch import save_file

    commit = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()  # any 40 hex digits
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    for name, content in files.items():
        if isinstance(content, Mapping):
            save_file({k: v.detach().contiguous() for k, v in content.items()}, str(snapshot / name))
        else:
            shutil.copyfile(content, snapshot / name)
    return snapshot


def use_cache(monkeypatch, cache: Path) -> None:
    """Point this process's huggingface_hub at `cache`, offline (it read HF_HUB_CACHE and HF_HUB_OFFLINE
    once, at import; subprocesses take the environment variables)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
