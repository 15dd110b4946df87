"""The demo's video tab without its page: predict's video path (`predict_video`: streamed frames, ids that
follow each person, predict's files and videos: the overlay and composite with the clip's sound, one
near-lossless matte video per person, `alpha_video=near_lossless`) on an uploaded clip, with a frame limit,
progress in frames per second, and one zip of everything predict writes for it.

A clip and its settings are predicted once into `<output>/videos/<digest of clip and settings>/`; the same
clip with the same settings is served from there. The `keep_runs` newest such folders are kept.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_him.data.io import IMAGE_SUFFIXES, ImageReadError
from e2e_him.predictor.backgrounds import Background
from e2e_him.predictor.mattes import Predictor
from e2e_him.predictor.outputs import Extras, OutputWriteError
from e2e_him.predictor.pipeline import VideoProgress, predict_video
from e2e_him.web.results import ResultFolders
from e2e_him.web.uploads import file_digest, safe_stem

log = logging.getLogger(__name__)
# progress(frames done, frames expected or None, frames per second so far)
Progress = Callable[[int, "int | None", float], None]
ALPHA_VIDEO = "near_lossless"  # predict's alpha_video= for the matte videos: greyscale H.264, crf 8


def carries_sound(audio: str | None) -> bool:
    """Whether summary.json's `audio` entry of a video (predictor.audio's notes) says that the overlay and
    composite hold the clip's sound ("copied (aac)", "re-encoded to AAC ...", possibly cut)."""
    return bool(audio) and audio.startswith(("copied", "re-encoded"))


@dataclass
class VideoResult:
    """What the page shows for one clip: the videos, the zip, the summary and notes for the visitor."""

    overlay: str | None = None
    composite: str | None = None
    alpha_videos: list[tuple[str, str]] = field(default_factory=list)  # (file, caption)
    archive: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        return "\n".join(f"- {note}" for note in self.notes) or "- upload a clip to start"


class VideoDemo:
    """A clip in, predict's video outputs out (module doc).

    Args:
        predictor: predict's `Predictor` (a copy takes the page's threshold and working size).
        output: the demo's output folder; this tab writes only under `<output>/videos/`.
        max_frames: frames predicted at most; a longer clip is cut there, with a note.
        keep_runs: result folders (and zips) kept under `<output>/videos/`, newest first.
    """

    def __init__(
        self, predictor: Predictor, output: Path, max_frames: int = 300, keep_runs: int = 10
    ) -> None:
        self.predictor = predictor
        self.results = ResultFolders(Path(output) / "videos", "video", keep_runs)
        self.max_frames = int(max_frames)

    def run(
        self,
        path: str | Path | None,
        score_threshold: float | None = None,
        eval_size: int | None = None,
        background: str | None = None,
        progress: Progress | None = None,
    ) -> VideoResult:
        """Predict the clip at `path` (an upload) as predict does, composited on `background` (predict's
        `background=`, None: no composite). A file that is not a video gives a note, not an error."""
        result = VideoResult()
        if not path:
            return result
        path = Path(path)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            result.notes.append(f"**skipped:** {path.name} is a photo: use the Photo tab")
            return result
        predictor = copy.copy(self.predictor)  # the same backend; this clip's threshold and working size
        if score_threshold is not None:
            predictor.score_threshold = round(float(score_threshold), 4)
        predictor.eval_size = int(eval_size or predictor.eval_size or 640)
        try:
            backdrop = Background(background) if background else None
        except (FileNotFoundError, ImageReadError, OSError, ValueError) as err:
            result.notes.append(f"background: {err}; no composite")
            background, backdrop = None, None
        stem = safe_stem(path.name)
        settings = {"score_threshold": predictor.score_threshold, "eval_size": predictor.eval_size,
                    "background": background if not background or not Path(background).is_file()
                    else file_digest(background), "max_frames": self.max_frames,
                    "alpha_video": ALPHA_VIDEO}  # fmt: skip
        folder = self.results.folder([file_digest(path), stem, settings])
        if self.results.ready(folder):
            summary = json.loads((folder / "summary.json").read_text())
        else:
            summary = self._predict(predictor, path, folder, stem, backdrop, settings, progress, result)
            if summary is None:
                return result
        return self._result(folder, summary, result)

    def _predict(self, predictor, path, folder, stem, backdrop, settings, progress, result) -> dict | None:
        """predict_video into a fresh `folder`: the summary, or None (and a note) for a clip it cannot use."""
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        extras = Extras(overlay=True, background=backdrop, alpha_video=ALPHA_VIDEO)
        started = time.perf_counter()

        def report(now: VideoProgress) -> None:
            if progress is not None:
                expected = self.max_frames if now.expected is None else min(now.expected, self.max_frames)
                progress(now.done, expected, now.fps)

        try:
            video = predict_video(
                predictor, path, folder, extras, stem, 1, self.max_frames, 1, progress=report
            )
        except OutputWriteError:
            raise
        except (ImageReadError, OSError, RuntimeError) as err:
            shutil.rmtree(folder, ignore_errors=True)
            reason = str(err).replace(str(path), path.name)
            result.notes.append(f"**skipped:** {path.name} is not a video this demo can read ({reason})")
            return None
        seconds = time.perf_counter() - started
        # paths as the zip holds them: the upload's temporary folder and the output folder mean nothing there
        video["video"] = path.name
        for key in ("mattes", "timestamps"):
            video[key] = video[key] and _inside(video[key], folder)
        for key in ("videos", "alpha_videos"):
            video[key] = {name: _inside(file, folder) for name, file in video[key].items()}
        video["output_problems"] = [p.replace(f"{folder}/", "") for p in video["output_problems"]]
        summary = {"settings": settings, "seconds": round(seconds, 2), "videos": [video]}
        (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.results.pack(folder)
        return summary

    def _result(self, folder: Path, summary: dict, result: VideoResult) -> VideoResult:
        video = summary["videos"][0]
        frames, seconds, size = video["frames"], summary["seconds"], summary["settings"]["eval_size"]
        result.summary = summary
        result.notes.append(
            f"{video['video']}: {frames} frames, {video['ids']} person id(s) issued; {seconds:.1f} s "
            f"({frames / max(seconds, 1e-9):.2f} frames/s, working size {size} px)"
        )
        if frames >= self.max_frames:
            result.notes.append(
                f"stopped after {self.max_frames} frames, the demo's limit (`max_video_frames` in "
                "conf/demo.yaml); `e2e-him-predict` takes the whole clip"
            )
        audio = video["audio"]
        carried = carries_sound(audio)
        result.notes.append(f"the overlay and composite carry the clip's sound: {audio}" if carried
                            else f"no sound in the videos: {audio}")  # fmt: skip
        if video.get("problem"):
            result.notes.append(f"problem: {video['problem']}")
        result.notes.extend(f"output problem: {problem}" for problem in video["output_problems"])
        made = {name: folder / file for name, file in video["videos"].items() if (folder / file).is_file()}
        result.overlay = str(made["overlay"]) if "overlay" in made else None
        result.composite = str(made["composite"]) if "composite" in made else None
        result.alpha_videos = [
            (str(folder / file), f"id {person}")
            for person, file in sorted(video["alpha_videos"].items())
            if (folder / file).is_file()
        ]
        result.archive = str(self.results.archive(folder))
        return result


def _inside(file: str, folder: Path) -> str:
    """`file`, a path predict wrote under `folder`, relative to it (as the zip holds it)."""
    return str(Path(file).relative_to(folder))
