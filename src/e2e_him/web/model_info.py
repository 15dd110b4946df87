"""What the demo page says about the loaded model: the file and what it is (a checkpoint of this suite, the
authors' release converted on the fly, a Hub folder, an ONNX model), the network and its layout, where it
runs and in which precision, and the post-processing defaults."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from e2e_him.models.checkpoint import derives_from_release
from e2e_him.models.hub import is_hub_reference
from e2e_him.models.model_card import RELEASE_TERMS, architecture
from e2e_him.predictor.mattes import Predictor


def weights_kind(ckpt_path: str, backend: Any, source: Mapping[str, Any]) -> str:
    """What the file given as `ckpt_path` is."""
    if getattr(backend, "name", "") == "onnx":
        made_from = getattr(backend, "metadata", {}).get("checkpoint")
        return "an ONNX model of `e2e_him.export`" + (f" (from `{made_from}`)" if made_from else "")
    if is_hub_reference(ckpt_path):
        return "a Hub folder (config.json + model.safetensors)"
    if (
        source.get("converted_from")
        and source.get("layout")
        and Path(ckpt_path).name == source["converted_from"]
    ):
        return "the authors' released file, converted on the fly into the released layout"
    if source.get("converted_from"):
        return f"a checkpoint converted from the authors' release (`{source['converted_from']}`)"
    if source.get("init_weights"):
        return f"a checkpoint of this suite, fine-tuned from `{source['init_weights']}`"
    return "a checkpoint of this suite"


def describe_model(predictor: Predictor, ckpt_path: str) -> dict[str, Any]:
    """The facts the page shows (also returned by the page's API): file, kind, network lines, backend,
    device, precision, threshold and minimum area."""
    backend = predictor.backend
    config = dict(getattr(backend, "run_config", None) or {})
    if getattr(backend, "name", "") == "onnx":
        config = {"model": backend.metadata.get("model") or {}}
    source = config.get("source") or {}
    net = (config.get("model") or {}).get("net") or {}
    torch_net = getattr(backend, "net", None)
    parameters = sum(p.numel() for p in torch_net.parameters()) if torch_net is not None else None
    precision = getattr(backend, "precision", "fp32")
    extras = []
    if getattr(backend, "channels_last", False):
        extras.append("channels-last")
    if getattr(backend, "band_tile", None):
        extras.append(f"band-only refinement ({backend.band_tile} px tiles)")
    return {
        "file": str(ckpt_path),
        "kind": weights_kind(str(ckpt_path), backend, source),
        "network": architecture(net, parameters) if net else ["(no model config in this file)"],
        "backbone": (net.get("backbone") or {}).get("name"),
        "backend": "onnxruntime" if getattr(backend, "name", "") == "onnx" else "PyTorch",
        "device": str(getattr(backend, "device", "cpu")),
        "precision": precision if precision != "fp32" else "float32",
        "options": extras,
        "score_threshold": predictor.score_threshold,
        "min_area": predictor.min_area,
        "working_size": predictor.eval_size,
        "non_commercial": derives_from_release(source),
    }


def model_headline(facts: Mapping[str, Any]) -> str:
    """One line the page always shows: the file, its layout and backbone, where and how it runs."""
    network = facts["network"][0].removeprefix("Layout: ") if facts["network"] else ""
    backbone = facts.get("backbone")
    return (
        f"**Model:** `{Path(facts['file']).name}`: {network}"
        + (f", {backbone} backbone" if backbone else "")
        + f"; {facts['backend']} on **{facts['device']}**, **{facts['precision']}**"
    )


def model_markdown(facts: Mapping[str, Any]) -> str:
    """`describe_model`'s facts as the page's model panel."""
    size = f"{facts['working_size']} px" if facts["working_size"] else "the photo's own"
    runs = f"{facts['backend']} on **{facts['device']}**, **{facts['precision']}**"
    if facts["options"]:
        runs += ", " + ", ".join(facts["options"])
    lines = [
        f"`{facts['file']}`: {facts['kind']}.",
        "",
        *(f"- {line}" for line in facts["network"]),
        f"- Runs with {runs}.",
        f"- Keeps a person when p(human) > {facts['score_threshold']:g} (the slider's default) and its matte "
        f"covers more than {facts['min_area']:g} px; working size (long side) {size}.",
    ]
    if facts["non_commercial"]:
        lines.append(f"- These weights are, or derive from, the authors' release: *{RELEASE_TERMS}*")
    return "\n".join(lines)
