"""`python -m e2e_him.demo ckpt_path=<checkpoint | authors' file | Hub folder | model.onnx>` (`e2e-him-demo`):
a local web page (Gradio, `pip install -e ".[demo]"`) on 127.0.0.1 to matte photos and clips with predict's
own path (e2e_him.predictor: the same backends, precision, refinement and composites); e2e_him.web holds it.
Everything it writes goes under `output=` (the run's folder by default)."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from e2e_him import CONF_DIR
from e2e_him.predictor.mattes import PREDICTOR_OPTIONS, build_predictor
from e2e_him.predictor.outputs import check_output_folder
from e2e_him.web.model_info import describe_model, model_headline, model_markdown
from e2e_him.web.photos import PhotoDemo
from e2e_him.web.serve import free_port, launch, offline_environment
from e2e_him.web.videos import VideoDemo

log = logging.getLogger(__name__)


def demo(cfg: DictConfig) -> None:
    """Build the predictor and the page of `cfg` (conf/demo.yaml) and serve it until interrupted."""
    output = check_output_folder(Path(cfg.output))
    offline_environment(output)
    try:
        import gradio  # noqa: F401
    except ImportError as err:
        raise SystemExit(
            'the demo needs Gradio: pip install -e ".[demo]" (or pip install "e2e-him[demo]")'
        ) from err
    from e2e_him.web.page import build_page

    predictor = build_predictor(**{k: cfg[k] for k in PREDICTOR_OPTIONS})
    facts = describe_model(predictor, str(cfg.ckpt_path))
    limits = (
        f"Limits: photos over {cfg.max_side} px are downscaled; clips stop after {cfg.max_video_frames} "
        f"frames; uploads up to {cfg.max_upload_mb} MB. Results and zips: `{output}`."
    )
    photos = PhotoDemo(predictor, output, cfg.max_side, cfg.cache_mb, cfg.keep_runs)
    videos = VideoDemo(predictor, output, cfg.max_video_frames, cfg.keep_runs)
    page = build_page(photos, videos, (model_headline(facts), model_markdown(facts)), limits)
    port = int(cfg.port) if cfg.port is not None else free_port(cfg.host)
    print(f"E2E-HIM demo: http://{cfg.host}:{port} ({facts['kind']}; on {facts['device']}, "
          f"{facts['precision']}); outputs in {output}. Ctrl+C stops it.", flush=True)  # fmt: skip
    launch(page, output, cfg.host, port, cfg.max_upload_mb, cfg.open_browser)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="demo")
def main(cfg: DictConfig) -> None:
    demo(cfg)


if __name__ == "__main__":
    main()
