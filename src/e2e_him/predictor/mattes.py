"""From photos to the mattes of their people: a backend (PyTorch or ONNX), the release's keep rule
(`e2e_him.models.inference.postprocess`) and, for photos larger than the network's working size, guided
refinement at full resolution (`e2e_him.predictor.refine`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from e2e_him.data.transforms import prepare_eval_image
from e2e_him.models.inference import postprocess
from e2e_him.models.release.band import check_tile
from e2e_him.predictor.backends import OnnxBackend, TorchBackend
from e2e_him.predictor.precision import float32_cpu_note
from e2e_him.predictor.refine import refine_mattes

log = logging.getLogger(__name__)
REFINE_MODES = ("auto", "guided", "none")
# refine="auto" refines a photo whose long side is more than this many times the network input's
AUTO_REFINE_FACTOR = 1.25


class Predictor:
    """A backend plus post-processing, applied to uint8 RGB photos of any size.

    Args:
        backend: `TorchBackend` or `OnnxBackend` (maps (B, 3, H, W) to `pred_logits` and `alpha_fin`).
        eval_size: long side of the network input (None: the photo's own size, padded to a multiple of 32).
        score_threshold: a query is a person when p(human) exceeds this.
        min_area: a person is kept when its summed alpha at the photo's size exceeds this many pixels.
        refine: "auto" (guided refinement when the photo is more than 1.25x the network input), "guided"
            (whenever the photo is larger than the input), "none" (plain bilinear upsampling).
        refine_radius: guided filter radius at the working size.
        refine_eps: guided filter regularisation.
    """

    def __init__(
        self,
        backend: Any,
        eval_size: int | None = 640,
        score_threshold: float = 0.5,
        min_area: float = 1000.0,
        refine: str = "auto",
        refine_radius: int = 1,
        refine_eps: float = 1e-4,
    ) -> None:
        if refine not in REFINE_MODES:
            raise ValueError(f"refine must be one of {list(REFINE_MODES)}, got {refine!r}")
        self.backend = backend
        self.eval_size = eval_size
        self.score_threshold = float(score_threshold)
        self.min_area = float(min_area)
        self.refine, self.refine_radius, self.refine_eps = refine, int(refine_radius), float(refine_eps)

    def _refines(self, meta: dict[str, Any]) -> bool:
        factor = max(meta["orig_size"]) / max(meta["input_size"])
        if self.refine == "none" or factor <= 1.0:
            return False
        return self.refine == "guided" or factor > AUTO_REFINE_FACTOR

    def predict_batch(
        self, tensors: torch.Tensor, metas: Sequence[dict[str, Any]], images: Sequence[np.ndarray]
    ) -> list[dict[str, np.ndarray]]:
        """People of a prepared batch: per photo `alphas` (K, H0, W0) float32 in [0, 1] and `scores` (K,),
        sorted by score.

        Args:
            tensors: (B, 3, H, W) from `prepare_eval_image`.
            metas: their metas.
            images: the photos (H0, W0, 3) uint8 (the guide of the refinement).
        """
        return self.people(self.forward(tensors, self.score_threshold), metas, images)

    def forward(
        self, tensors: torch.Tensor, keep_scores_above: float | None = None
    ) -> dict[str, torch.Tensor]:
        """The network's `pred_logits` (B, N, 2) and `alpha_fin` (B, N, H, W) for a prepared batch; mattes are
        decoded for the queries that can pass `keep_scores_above` (None: every query; a kept query's matte
        is the same either way up to float rounding, models/query_selection.py), so that outputs kept with
        None serve any threshold."""
        return self.backend(tensors, keep_scores_above=keep_scores_above)

    def people(
        self,
        outputs: dict[str, torch.Tensor],
        metas: Sequence[dict[str, Any]],
        images: Sequence[np.ndarray],
        score_threshold: float | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """The people of `forward`'s outputs (as `predict_batch`): the keep rule at `score_threshold` (None:
        the predictor's), mattes at each photo's size, refined where the photo is larger than the input."""
        threshold = self.score_threshold if score_threshold is None else float(score_threshold)
        refines = [self._refines(m) for m in metas]
        # photos that are refined are post-processed at the working size; the area rule is applied after
        work_metas = [{**m, "orig_size": m["input_size"]} if r else m for m, r in zip(metas, refines)]
        min_area = 0.0 if any(refines) else self.min_area
        people = postprocess(outputs, work_metas, score_threshold=threshold, min_area=min_area)
        results = []
        for person, image, refined in zip(people, images, refines):
            alphas = person["alphas"].float().cpu().numpy()
            scores = person["scores"].float().cpu().numpy()
            if refined:
                alphas = refine_mattes(image, alphas, self.refine_radius, self.refine_eps)
            if refined or min_area != self.min_area:
                keep = alphas.sum(axis=(1, 2)) > self.min_area
                alphas, scores = alphas[keep], scores[keep]
            results.append({"alphas": alphas, "scores": scores})
        return results

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """`alphas` (K, H0, W0) and `scores` (K,) of one uint8 RGB photo."""
        tensor, meta = prepare_eval_image(image, self.eval_size)
        return self.predict_batch(tensor[None], [meta], [image])[0]


def build_backend(
    ckpt_path: str | Path,
    backend: str = "torch",
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool = True,
    compile: bool = False,
    threads: int | None = None,
    band_tile: int | None = None,
) -> tuple[Any, dict[str, float]]:
    """The backend for a checkpoint (`backend=torch`: a .ckpt of e2e_him.train, the authors' file, a Hub
    folder or `hf://<user>/<repo>`) or an exported model (`backend=onnx`, a .onnx of e2e_him.export), and its
    stored `score_threshold` / `min_area`."""
    path = Path(ckpt_path)
    if backend == "onnx" or (backend == "auto" and path.suffix.lower() == ".onnx"):
        if path.suffix.lower() != ".onnx":
            raise ValueError(f"backend=onnx needs an .onnx file from python -m e2e_him.export, got {path}")
        if band_tile is not None:  # the graph refines the whole image; a bad value is refused all the same
            check_tile(band_tile, 32)  # the exporter's size multiple
        engine = OnnxBackend(path, threads=threads)
        stored = {
            k: float(engine.metadata[k]) for k in ("score_threshold", "min_area") if k in engine.metadata
        }
        return engine, stored
    if backend not in ("torch", "auto"):
        raise ValueError(f"backend must be torch, onnx or auto, got {backend!r}")
    if path.suffix.lower() == ".onnx":
        raise ValueError(f"{path} is an ONNX model: run it with backend=onnx")
    from e2e_him.models.checkpoint import load_module

    target = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    module = load_module(str(ckpt_path), map_location=target)  # a path, a Hub folder or hf://<user>/<repo>
    engine = TorchBackend(module.net, target, precision, channels_last, compile, band_tile)
    engine.run_config = dict(getattr(module, "run_config", None) or {})
    stored = {k: float(module.hparams[k]) for k in ("score_threshold", "min_area") if k in module.hparams}
    log.info("backend: torch on %s, %s%s", engine.device, engine.precision, ", channels-last" * channels_last)
    if note := float32_cpu_note(precision, engine.precision, engine.device, str(ckpt_path)):
        log.info(note)
    return engine, stored


# the options of conf/predict.yaml that `build_predictor` takes (the web demo's config inherits them)
PREDICTOR_OPTIONS = (
    "ckpt_path", "backend", "device", "precision", "channels_last", "compile", "threads", "band_tile",
    "eval_size", "score_threshold", "min_area", "refine", "refine_radius", "refine_eps",
)  # fmt: skip


def build_predictor(
    ckpt_path: str | Path,
    eval_size: int | None = 640,
    score_threshold: float | None = None,
    min_area: float | None = None,
    refine: str = "auto",
    refine_radius: int = 1,
    refine_eps: float = 1e-4,
    **backend_options: Any,
) -> Predictor:
    """The backend of `ckpt_path` (`build_backend` with `backend_options`: backend, device, precision,
    channels_last, compile, threads, band_tile) with predict's post-processing and refinement settings;
    `score_threshold` / `min_area` None: the checkpoint's (p(human) > 0.5, 1000 px in the release)."""
    engine, stored = build_backend(ckpt_path, **backend_options)
    threshold = stored.get("score_threshold", 0.5) if score_threshold is None else score_threshold
    area = stored.get("min_area", 1000.0) if min_area is None else min_area
    return Predictor(engine, eval_size, threshold, area, refine, refine_radius, refine_eps)
