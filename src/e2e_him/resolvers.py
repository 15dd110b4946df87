"""OmegaConf resolvers used by conf/: registered when `e2e_him` is imported (the entry points and tests do)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[2]


def _first_set(*values):
    """The first argument that is not null (`${e2e_him_or:${run_dir},default}`)."""
    for value in values:
        if value is not None and value != "":
            return value
    return None


def register() -> None:
    """Register `${e2e_him_root:}` (the repository root) and `${e2e_him_or:a,b}` once per process."""
    if not OmegaConf.has_resolver("e2e_him_root"):
        OmegaConf.register_new_resolver("e2e_him_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("e2e_him_or"):
        OmegaConf.register_new_resolver("e2e_him_or", _first_set)
