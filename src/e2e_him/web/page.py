"""The demo's page (Gradio Blocks): a Photos tab and a Video tab over `PhotoDemo` and `VideoDemo`, and a
panel that says which model runs where. Imported only after `e2e_him.web.serve.offline_environment` has set
Gradio's variables (it reads some when imported); every asset comes from the installed package: the theme's
fonts are Gradio's bundled ones or the system's, nothing is fetched from another host."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from e2e_him.web.photos import PhotoDemo, background_spec
from e2e_him.web.videos import VideoDemo

log = logging.getLogger(__name__)
DEFAULT_COLOUR = "#00b140"  # chroma-key green


def theme() -> gr.themes.Base:
    """Gradio's default look with fonts it ships (no web-font request) and the system's as fallbacks."""
    return gr.themes.Default(
        font=[gr.themes.LocalFont("Source Sans Pro"), "ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=[gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"],
    )


def guarded(fn: Callable[..., tuple], empty: tuple) -> Callable[..., tuple]:
    """`fn` for an event: an unexpected error becomes a message in the notes (first output), the rest
    `empty`, and its traceback goes to the console and the demo's log, never to the page."""

    def run(*args: Any, **kwargs: Any) -> tuple:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # the app keeps serving whatever one request does
            log.exception("request failed")
            return (f"- **error:** {type(err).__name__}: {err}", *empty)

    run.__name__ = fn.__name__
    return run


def settings(threshold: float, size: int) -> list[gr.components.Component]:
    """The controls both tabs share: score threshold, working size, background colour and photo."""
    return [
        gr.Slider(0.0, 1.0, threshold, step=0.01, label="Score threshold p(human)"),
        gr.Slider(min(128, size), max(2048, size), size, step=32, label="Working size (long side, px)"),
        gr.ColorPicker(DEFAULT_COLOUR, label="Background colour"),
        gr.Image(
            label="Background photo (instead of the colour)", type="filepath", sources=["upload"], height=160
        ),
    ]


def photo_tab(photos: PhotoDemo) -> None:
    """Photos in; overlays, mattes with scores, composites and one zip out. Every control re-runs at once,
    and the worker's caches make that cost only what the control changes."""

    def run_photos(files, score, work_size, colour, backdrop, people):
        result = photos.run(files, score, work_size, background_spec(colour, backdrop), people)
        return (result.markdown(), result.overlays, result.mattes, result.composites, result.archive,
                result.scores)  # fmt: skip

    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(label="Photos (one or several)", file_count="multiple", elem_id="photo-files")
            controls = settings(
                float(photos.predictor.score_threshold), int(photos.predictor.eval_size or 640)
            )
            people = gr.Textbox(label="People on the composite and in the cut-outs",
                                placeholder="ranks such as 0, 2; blank: everyone")  # fmt: skip
            button = gr.Button("Matte the photos", variant="primary")
        with gr.Column(scale=2):
            notes = gr.Markdown("- upload photos to start", elem_id="photo-notes")
            with gr.Row():
                overlays = gr.Gallery(label="People", columns=1, height=360, object_fit="contain",
                                      elem_id="overlays")  # fmt: skip
                composites = gr.Gallery(label="Composite", columns=1, height=360, object_fit="contain",
                                        elem_id="composites")  # fmt: skip
            mattes = gr.Gallery(label="Each person's matte (photo #rank · p(human))", columns=6,
                                height=250, object_fit="contain", elem_id="mattes")  # fmt: skip
            archive = gr.File(
                label="Mattes, cut-outs (RGBA), overlays, composites: one zip", elem_id="photo-zip"
            )
            with gr.Accordion("Scores", open=False):
                scores = gr.JSON(label="p(human) of each kept person, by photo")
    inputs = [files, *controls, people]
    outputs = [notes, overlays, mattes, composites, archive, scores]
    run = guarded(run_photos, ([], [], [], None, {}))
    options = {"concurrency_id": "model", "trigger_mode": "always_last"}
    button.click(run, inputs, outputs, api_name="photos", **options)
    score, size, colour, backdrop = controls
    for event in (files.upload, score.release, size.release, colour.change, backdrop.change, people.submit):
        event(run, inputs, outputs, api_visibility="private", **options)


def video_tab(videos: VideoDemo) -> None:
    """A clip in (on the button: it takes a while); a progress bar in frames per second; the overlay and
    composite videos, each person's matte video and one zip out."""

    def run_video(clip, score, work_size, colour, backdrop, progress=gr.Progress()):  # noqa: B008
        def report(done: int, expected: int | None, fps: float) -> None:
            progress((done, expected), desc=f"{fps:.2f} frames/s", unit="frames")

        result = videos.run(clip, score, work_size, background_spec(colour, backdrop), report)
        return (result.markdown(), result.overlay, result.composite, result.alpha_videos, result.archive,
                result.summary)  # fmt: skip

    with gr.Row():
        with gr.Column(scale=1):
            clip = gr.Video(label="Clip", sources=["upload"], elem_id="clip")
            controls = settings(
                float(videos.predictor.score_threshold), int(videos.predictor.eval_size or 640)
            )
            button = gr.Button("Matte the clip", variant="primary")
        with gr.Column(scale=2):
            notes = gr.Markdown("- upload a clip, then press the button", elem_id="video-notes")
            overlay = gr.Video(label="People (overlay)", interactive=False)
            composite = gr.Video(label="Composite", interactive=False)
            alphas = gr.Gallery(label="Each person's matte video (by id)", columns=3, height="auto")
            archive = gr.File(label="Mattes per frame and id (predict's layout), frames, videos: one zip")
            with gr.Accordion("Summary", open=False):
                summary = gr.JSON(label="summary.json")
    button.click(guarded(run_video, (None, None, [], None, {})), [clip, *controls],
                 [notes, overlay, composite, alphas, archive, summary], api_name="video",
                 concurrency_id="model")  # fmt: skip


def build_page(
    photos: PhotoDemo, videos: VideoDemo, model: tuple[str, str], limits: str, title: str = "E2E-HIM demo"
) -> gr.Blocks:
    """The page. API names (for `gradio_client`): `/photos` and `/video`.

    Args:
        photos: the photo tab's worker.
        videos: the video tab's worker.
        model: Markdown about the loaded model: one line always shown, and the details
            (`model_info.model_headline`, `model_markdown`).
        limits: Markdown about the demo's limits (photo size, clip length, upload size).
        title: the browser tab's title.
    """
    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(f"## {title}: each person's matte, composite and cut-out")
        gr.Markdown(model[0], elem_id="model-headline")
        with gr.Accordion("Model details and limits", open=False):
            gr.Markdown(model[1], elem_id="model-info")
            gr.Markdown(limits)
        with gr.Tabs():
            with gr.Tab("Photos", id="photos"):
                photo_tab(photos)
            with gr.Tab("Video", id="video"):
                video_tab(videos)
    return page
