"""The model card (README.md) of a Hub folder, generated from what the folder holds: the layout and its
sizes, the training data and steps, the metrics of the run, the intended use and the licence of the weights.

The licence follows the weights: anything converted or fine-tuned from the authors' released network
carries their terms (`RELEASE_TERMS`: non-commercial use only); weights trained here from a backbone's
ImageNet weights take the licence their publisher chooses (`export`'s `hub.license`, MIT by default), and the
card names the backbone weights' own licence beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RELEASE_URL = "https://github.com/aipixel/E2E-HIM"
RELEASE_TERMS = "the model can only be used and distributed for noncommercial purposes"
RELEASE_LICENSE_NAME = "e2e-him-release-noncommercial"
SUITE = "e2e-him"
TAGS = ["human-instance-matting", "image-matting", "instance-segmentation", "pytorch", "e2e-him"]
# the metric keys a card lists first (docs/metrics.md); the others follow, losses left out
HEADLINE = [f"{m}_{t}" for t in ("0.5", "0.75") for m in ("REC", "ACC", "EMSE", "EMAD")] + [
    "IMQ_mse",
    "IMQ_mad",
]
CITATION = """@article{liu2023e2ehim,
  title   = {End-to-End Human Instance Matting},
  author  = {Liu, Qinglin and Zhang, Shengping and Meng, Quanling and Zhong, Bineng and Liu, Peiqiang and
             Yao, Hongxun},
  journal = {IEEE Transactions on Circuits and Systems for Video Technology},
  year    = {2023}
}"""


def card_licence(derived_from_release: bool, chosen: str = "mit") -> dict[str, str]:
    """The card's licence metadata: `license` (and `license_name`, `license_link` for the authors' terms)."""
    if derived_from_release:
        return {"license": "other", "license_name": RELEASE_LICENSE_NAME, "license_link": RELEASE_URL}
    return {"license": chosen}


def _node(node: Any, skip: tuple[str, ...] = ()) -> str:
    """`Class` (key=value, ...) of a config node's `_target_` and its plain settings."""
    if not isinstance(node, Mapping):
        return f"`{node}`"
    target = str(node.get("_target_", "?")).rsplit(".", 1)[-1]
    values = [
        f"{k}={v}"
        for k, v in node.items()
        if not k.startswith("_") and k not in skip and v is not None and not isinstance(v, Mapping)
    ]
    return f"`{target}`" + (f" ({', '.join(values)})" if values else "")


def _backbone_start(backbone: Mapping[str, Any]) -> str:
    """Where the backbone's weights started, with their licence where timm records one."""
    pretrained = backbone.get("pretrained")
    if pretrained is None:
        return "random initialisation (model.net.backbone.pretrained=null)"
    if pretrained == "timm" and backbone.get("name") and backbone.get("pretrained_tag"):
        name = f"{backbone['name']}.{backbone['pretrained_tag']}"
        try:
            from timm.models import get_pretrained_cfg

            licence = getattr(get_pretrained_cfg(name), "license", None)
        except Exception:  # timm without that entry: say what the config says
            licence = None
        return f"ImageNet weights timm/{name}" + (f" (licence per timm: {licence})" if licence else "")
    return f"pretrained weights `{pretrained}`"


def _layout(net: Mapping[str, Any]) -> str:
    target = str(net.get("_target_", ""))
    if ".release." in target:
        return 'the authors\' released layout (`ReleaseE2EHIM`, docs/architecture.md, "The released layout")'
    return "the paper's layout (`E2EHIM`, Section III of the paper)"


def architecture(net: Mapping[str, Any], parameters: int | None = None) -> list[str]:
    """What a network is, from its config node (`model.net`): layout, backbone, queries and widths."""
    perception, guidance = net.get("perception") or {}, net.get("guidance") or {}
    backbone = net.get("backbone") or {}
    count = f"; parameters: {parameters / 1e6:.1f} M" if parameters is not None else ""
    return [
        f"Layout: {_layout(net)}",
        f"Backbone: {_node(backbone, skip=('pretrained', 'pretrained_tag', 'in_channels'))}",
        f"Queries: {perception.get('num_queries', '?')}; guidance heads: {guidance.get('num_heads', '?')}; "
        f"hidden width: {net.get('hidden_dim', '?')}{count}",
    ]


def _metrics_table(metrics: Mapping[str, float]) -> list[str]:
    keys = [k for k in HEADLINE if k in metrics]
    keys += sorted(k for k in metrics if k not in keys and not k.startswith("loss"))
    return ["| metric | value |", "|---|---|", *(f"| {k} | {float(metrics[k]):.4f} |" for k in keys)]


def model_card(
    config: Mapping[str, Any],
    parameters: int,
    derived_from_release: bool,
    licence: str = "mit",
    metrics: Mapping[str, float] | None = None,
    metrics_note: str = "",
    training: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
) -> str:
    """The README.md of a Hub folder (YAML metadata + Markdown).

    Args:
        config: the folder's config (`model`, `data`, `source`).
        parameters: the network's parameter count.
        derived_from_release: the weights are, or derive from, the authors' release (their terms apply).
        licence: the licence chosen for weights trained here (ignored when `derived_from_release`).
        metrics: the run's metrics.json, or None.
        metrics_note: where the metrics come from (and what they belong to).
        training: `global_step`, `epoch`, `checkpoint` of the file the folder was written from.
        repo_id: `<user>/<repo>` where it is published, for the usage commands.
    """
    from huggingface_hub import ModelCardData

    model, data = config.get("model") or {}, config.get("data") or {}
    net = model.get("net") or {}
    source = config.get("source") or {}
    training = dict(training or {})
    backbone = net.get("backbone") or {}
    ref = f"hf://{repo_id}" if repo_id else "<this folder, or hf://<user>/<repo>>"
    meta = ModelCardData(
        library_name=SUITE,
        pipeline_tag="image-segmentation",
        tags=TAGS,
        **card_licence(derived_from_release, licence),
    )
    lines = [
        "---",
        meta.to_yaml(),
        "---",
        "",
        "# E2E-HIM network" + (" (the authors' released Swin-T)" if source.get("converted_from") else ""),
        "",
        "Human instance matting: one alpha matte per person in a photo, from *End-to-End Human Instance "
        "Matting* (Liu et al., IEEE TCSVT 2023). A network of the e2e-him suite, written by `e2e_him.export "
        "format=hub`: `config.json` (the resolved model config it is rebuilt from), `model.safetensors` (its "
        "weights: tensors only, no pickle) and this card.",
        "",
        "## Architecture and layout",
        "",
        *(f"- {line}." for line in architecture(net, parameters)),
        "- Input: an RGB photo, ImageNet-normalised, any size (padded to multiples of 32); output: per query "
        "a person score and a full-resolution alpha matte.",
        f"- Post-processing: score threshold {model.get('score_threshold', '?')}, minimum matte area "
        f"{model.get('min_area', '?')} pixels.",
        "",
        "## Training",
        "",
    ]
    if source.get("converted_from"):
        lines += [
            f"Trained by the paper's authors and released with their inference code ({RELEASE_URL}, file "
            f"`{source['converted_from']}`); converted key for key into this suite's released layout by "
            "`e2e_him.convert_release` (no training here).",
        ]
    else:
        train_node = data.get("train") if isinstance(data.get("train"), Mapping) else data
        lines += [
            f"- Data: {_node(train_node, skip=('root',))}; crops {data.get('crop_size', '?')}.",
            f"- Steps: saved at optimiser step {training.get('global_step', '?')}, epoch "
            f"{training.get('epoch', '?')} (counted from 0); batch {data.get('batch_size', '?')} per device"
            + (f"; written from `{training['checkpoint']}`" if training.get("checkpoint") else "")
            + ".",
        ]
        lines.append(
            f"- Start: every weight from `{source['init_weights']}` ({source.get('kind', '?')})."
            if source.get("init_weights")
            else f"- Backbone start: {_backbone_start(backbone)}."
        )
    lines += ["", "## Metrics", ""]
    if metrics:
        lines += [metrics_note or "From the run's metrics.json.", "", *_metrics_table(metrics)]
        lines += ["", "Definitions: the suite's docs/metrics.md (REC/ACC/EMSE/EMAD: Eq. 20 of the paper)."]
    else:
        lines.append(metrics_note or "No metrics.json was found for these weights.")
    lines += [
        "",
        "## Intended use",
        "",
        "Per-person alpha mattes of photos and videos with several people, for research and for trying the "
        "method; fine-tuning on other human matting data. Check the metrics above on data like yours first: "
        "a network trained on the suite's synthetic people (the quickstart) does not matte real photos well.",
        "",
        "```bash",
        "# with the e2e-him suite installed (`pip install .` in its clone)",
        f"e2e-him-predict ckpt_path={ref} input=photo.jpg output=mattes/",
        f"e2e-him-eval ckpt_path={ref} data=him2k data.root=/path/to/HIM2K",
        f"e2e-him-train experiment=<experiment> init_weights={ref}   # fine-tune",
        "```",
        "",
        "## Licence",
        "",
    ]
    if derived_from_release:
        lines += [
            "**Non-commercial.** These weights are, or derive from, the network the paper's authors "
            f"released ({RELEASE_URL}), whose terms are: *{RELEASE_TERMS}*. Those terms travel with every "
            "copy, conversion and fine-tuned version of them. (The e2e-him code itself is MIT.)",
        ]
    else:
        lines += [
            f"Weights: `{licence}`, as chosen by their publisher. They were trained with the e2e-him code "
            "(MIT) from "
            + (
                f"the weights of `{source['init_weights']}`"
                if source.get("init_weights")
                else _backbone_start(backbone)
            )
            + "; the training data and any weights they started from keep their own terms.",
        ]
    lines += ["", "## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)
