"""Checkpoints of this project: reading them safely, rebuilding the trained model from the config inside
(a config of any earlier version upgraded: `models.stored_configs`), starting a run from their weights or the
authors' released ones, and rewriting a file of an earlier version with plain types. Wherever a checkpoint is
read, a Hub folder (`models.hub`: a folder, or `hf://<user>/<repo>`) is read too.

Where the weights come from travels with them as the run config's `source`: `{"converted_from": <file>}` for
the authors' release, `{"init_weights": <ref>, "from": <that file's source>}` for a run started from another
network's weights; a network trained here from its backbone's weights has none. `derives_from_release` reads
it, so that the authors' non-commercial terms follow their weights through conversions and fine-tuning."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from e2e_him.models.hub import is_hub_reference, read_hub_folder
from e2e_him.models.stored_configs import upgrade_run_config
from e2e_him.utils.instantiate import build


def read_plain(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """`torch.load(path, weights_only=True)`: tensors and plain Python types only, so no code in the file can
    run. Checkpoints of this project hold nothing else (their hyperparameters are plain containers); a file
    that holds other objects is refused with a message that says so."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: holds Python objects besides tensors and plain types, so it is not loaded (torch.load "
            "with weights_only=True refuses it). Checkpoints that e2e_him.train writes hold plain types "
            "only; one of your own written by an earlier version can be rewritten with "
            f"`python -m e2e_him.models.checkpoint {path}` (only for files you trust). ({err})"
        ) from err
    except Exception as err:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({err})") from err


def derives_from_release(source: Mapping[str, Any] | None) -> bool:
    """Whether weights with this `source` are (or were fine-tuned from) the authors' released ones."""
    while isinstance(source, Mapping):
        if source.get("converted_from"):
            return True
        source = source.get("from")
    return False


def build_trained(config: Mapping[str, Any], where: str):
    """The `E2EHIMModule` of a stored run config, its backbone's pretrained weights not looked for (the
    trained weights replace them)."""
    model_cfg = OmegaConf.create(dict(config["model"]))
    if "backbone" in model_cfg.get("net", {}):
        model_cfg.net.backbone.pretrained = None
    return build(model_cfg, f"model (from {where})")


def load_module(path: str | Path, map_location: str | torch.device = "cpu"):
    """The `E2EHIMModule` stored in `path`, in eval mode, with its training config as `module.run_config`.

    `path` may also be a Hub folder or `hf://<user>/<repo>` (models.hub), or the authors' released weights
    file as they ship it: it is converted on the fly into the released layout
    (`e2e_him.models.release.convert`), strictly.
    """
    if is_hub_reference(path):
        config, state = read_hub_folder(path)
        config = upgrade_run_config(config)
        module = build_trained(config, str(path))
        try:
            module.net.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{path}: weights do not fit the stored model config: {err}") from err
        module.run_config = {k: config[k] for k in ("model", "data", "source") if config.get(k) is not None}
        return module.eval().to(map_location)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = read_plain(path, map_location)
    if isinstance(ckpt, Mapping) and "e2e_him_config" not in ckpt:
        from e2e_him.models.release.convert import module_from_release

        return module_from_release(ckpt, str(path)).eval().to(map_location)
    if "state_dict" not in ckpt:
        raise ValueError(
            f"{path}: no 'state_dict' in this file; is it a Lightning checkpoint of e2e_him.train?"
        )
    config = upgrade_run_config(ckpt.get("e2e_him_config"))
    if config is None or "model" not in config:
        raise ValueError(f"{path}: no model config inside; it was not written by e2e_him.train")
    if ckpt.get("e2e_him_source") and not config.get("source"):  # converted before sources were in the config
        config["source"] = ckpt["e2e_him_source"]
    module = build_trained(config, "checkpoint")
    missing, unexpected = module.load_state_dict(ckpt["state_dict"], strict=False)
    real_missing = [k for k in missing if "metrics" not in k]
    if real_missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit the stored model config (missing {real_missing[:5]}, "
            f"unexpected {unexpected[:5]})"
        )
    module.run_config = config
    return module.eval().to(map_location)


def load_init_weights(module, path: str | Path) -> dict[str, Any]:
    """Start `module` (an `E2EHIMModule`) from the weights in `path`, strictly, before training (fine-tuning,
    not resuming: optimiser, schedule and epoch start afresh). Returns the run's `source`: what the file was
    (`kind`) and where its own weights came from (`from`).

    `path` is a checkpoint of this project (its `net.` weights; they must fit the model exactly), a Hub folder
    or `hf://<user>/<repo>`, or the authors' released state dict, which is converted on the fly
    (`e2e_him.models.release.convert`, read with weights_only=True like everything here) and needs the
    released layout (`model=release_swint`).
    """
    from e2e_him.models.release import ReleaseE2EHIM
    from e2e_him.models.release.convert import release_to_ours, unwrap_state_dict

    if is_hub_reference(path):
        config, net_state = read_hub_folder(path)
        kind, inner = "a Hub folder of this project", config.get("source")
    else:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"init_weights: {path} not found")
        obj = read_plain(path)
        state = obj.get("state_dict") if isinstance(obj, Mapping) else None
        if isinstance(state, Mapping) and state and all(k.startswith("net.") for k in state):
            net_state = {k[len("net.") :]: v for k, v in state.items()}
            kind = "a checkpoint of this project"
            config = upgrade_run_config(obj.get("e2e_him_config")) or {}
            inner = config.get("source") or obj.get("e2e_him_source")
        else:
            if not isinstance(module.net, ReleaseE2EHIM):
                raise ValueError(
                    f"init_weights: {path} is not a checkpoint of this project; if it is the authors' "
                    "released network, train the released layout: experiment=release_swint "
                    "(model=release_swint)"
                )
            expected = {k: v.shape for k, v in module.net.state_dict().items()}
            net_state = release_to_ours(unwrap_state_dict(obj, str(path)), expected)
            kind, inner = "the authors' released weights", {"converted_from": path.name}
    try:
        module.net.load_state_dict(net_state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"init_weights: {path} does not fit the model being trained: {err}") from err
    return {"init_weights": str(path), "kind": kind, "from": inner}


def stored_config(path: str | Path) -> dict[str, Any] | None:
    """The run config inside a checkpoint of `e2e_him.train` (None if it has none) in today's layout,
    without loading the tensors into memory."""
    ckpt = read_plain(path, mmap=True)
    return upgrade_run_config(ckpt.get("e2e_him_config")) if isinstance(ckpt, Mapping) else None


def rewrite_plain(path: str | Path) -> Path:
    """Rewrite a checkpoint of an earlier version (OmegaConf containers in its hyperparameters) with plain
    types, in place, so that it loads with weights_only=True. It is read with weights_only=False: trust it."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    def plain(obj: Any) -> Any:
        if isinstance(obj, (DictConfig, ListConfig)):
            return OmegaConf.to_container(obj, resolve=True)
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(plain(v) for v in obj)
        return obj

    path = Path(path)
    torch.save(plain(torch.load(path, map_location="cpu", weights_only=False)), path)
    return path


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:]:
        print(f"rewrote {rewrite_plain(name)} with plain types (loads with weights_only=True)")
