"""Writing the videos of predict (PyAV): at the input's size, with its frame timing and its sound.

Codecs, chosen by what a frame needs:
- colour (overlay, composite), even width and height: H.264 4:2:0 (crf 18, no B-frames), which every player
  and browser plays;
- colour, an odd width or height: VP9 4:2:0 in the same .mp4 (H.264's 4:2:0 cannot code an odd size, VP9's
  can; browsers that play VP9 play it, older Safari may not);
- alpha (one matte per person): greyscale H.264 (4:0:0, full range, any size), near-lossless (crf 8) or
  lossless (qp 0: every value comes back exactly).

Each frame keeps its own presentation time (variable frame rate in, variable frame rate out); a frame lasts
until the next one, the last one until the end the caller gives. The output starts at time 0 = the first
frame written, and the sound (predictor.audio) moves with it.

A writer opens at its first frame (an unreadable input leaves no file) and is always closed. An encoder or
muxer error is an *output* problem: `problem` names the file in one line, the frames written so far are
finished into a playable file (a file without any frame is removed), later frames are ignored, and the other
outputs go on.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from e2e_him.predictor.audio import AudioTrack

log = logging.getLogger(__name__)
H264 = {"crf": "18", "preset": "veryfast", "bf": "0"}
VP9 = {"crf": "24", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
# one encoder per person stays open: no look-ahead (tune=zerolatency) halves its memory (about 20 MB at 720p)
ALPHA = {
    "near_lossless": {"crf": "8", "preset": "veryfast", "tune": "zerolatency", "bf": "0", "threads": "1"},
    "lossless": {"qp": "0", "preset": "veryfast", "tune": "zerolatency", "bf": "0", "threads": "1"},
}


def choose_codec(width: int, height: int, alpha: str | None = None) -> tuple[str, str, dict[str, str]]:
    """(encoder, pixel format, options) for frames of `width` x `height` (module doc)."""
    if alpha is not None:
        if alpha not in ALPHA:
            raise ValueError(
                f"alpha_video={alpha!r}: use one of {', '.join(ALPHA)} (or null: no alpha video)"
            )
        return "libx264", "gray", dict(ALPHA[alpha])
    if width % 2 or height % 2:
        return "libvpx-vp9", "yuv420p", dict(VP9)
    return "libx264", "yuv420p", dict(H264)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


class VideoWriter:
    """One output video, written frame by frame.

    Args:
        path: the .mp4 file.
        time_base: unit of the timestamps given to `append` (the input stream's).
        alpha: None for colour frames (H, W, 3) uint8; "near_lossless" or "lossless" for mattes (H, W) uint8.
        sound: the input file whose sound goes into the video, or None.

    Attributes:
        frames: frames in the file so far (packets written).
        problem: None, or the one-line output problem that stopped this video.
        audio: what happened to the sound (summary.json), or None without `sound`.
    """

    def __init__(
        self, path: str | Path, time_base: Fraction, alpha: str | None = None, sound: Path | None = None
    ) -> None:
        self.path, self.time_base, self.alpha, self.sound = Path(path), Fraction(time_base), alpha, sound
        self.frames = 0
        self._given = 0  # frames given to the encoder (it may hold some before they reach the file)
        self.problem: str | None = None
        self.codec = ""
        self._container: Any = None
        self._stream: Any = None
        self._audio: AudioTrack | None = None
        self._held: tuple[np.ndarray, int] | None = None  # the last frame, until its duration is known
        self._origin = 0
        self._last_duration = 1
        self._durations: dict[int, int] = {}  # duration of each frame the encoder still holds, by pts

    @property
    def audio(self) -> str | None:
        return None if self._audio is None else self._audio.note

    def append(self, image: np.ndarray, pts: int) -> None:
        """Add a frame shown from `pts` (time-base units of the input) until the next one."""
        if self.problem is not None:
            return
        try:
            if self._container is None:
                self._open(image.shape[1], image.shape[0], pts)
            if self._held is not None:
                held, held_pts = self._held
                pts = max(pts, held_pts + 1)
                self._last_duration = pts - held_pts
                self._encode(held, held_pts, self._last_duration)
            self._held = (image, pts)
        except Exception as err:  # an encoder or muxer error of any kind is this output's problem
            self._fail(err)

    def close(self, end_pts: int | None = None, cut_sound: bool = False) -> None:
        """Finish the video; the last frame lasts until `end_pts` (else as long as the one before it). With
        `cut_sound` (max_frames stopped the picture before the input's end) the sound ends there too."""
        if self._container is None:
            return
        try:
            if self.problem is None and self._held is not None:
                held, held_pts = self._held
                duration = end_pts - held_pts if end_pts is not None and end_pts > held_pts else None
                self._encode(held, held_pts, duration or self._last_duration)
                self._held = None
                self._mux(self._stream.encode(None))
                if self._audio is not None:
                    end = None if end_pts is None else float((end_pts - self._origin) * self.time_base)
                    self._audio.finish(self._container, end if cut_sound else None)
        except Exception as err:
            self._fail(err)
        finally:
            self._shut()

    def _open(self, width: int, height: int, pts: int) -> None:
        import av

        self.codec, pix_fmt, options = choose_codec(width, height, self.alpha)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._origin = pts
        self._container = av.open(str(self.path), "w")
        stream = self._container.add_stream(self.codec, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = stream.codec_context.time_base = self.time_base
        if self.alpha is not None:  # the matte's 0..255 as they are, and players told so
            stream.codec_context.color_range = av.video.reformatter.ColorRange.JPEG
        self._stream = stream
        if self.sound is not None:
            self._audio = AudioTrack(self.sound, float(pts * self.time_base))
            self._audio.attach(self._container)

    def _encode(self, image: np.ndarray, pts: int, duration: int) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(image, format="rgb24" if self.alpha is None else "gray")
        frame.pts, frame.time_base, frame.duration = pts - self._origin, self.time_base, duration
        self._durations[frame.pts] = duration  # encoders do not all pass it on to their packets
        self._mux(self._stream.encode(frame))
        self._given += 1
        if self._audio is not None:
            self._audio.write_until(self._container, float(frame.pts * self.time_base))

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:  # without B-frames, packets come in presentation order, one per frame
            packet.duration = self._durations.pop(packet.pts, packet.duration)
        self._container.mux(packets)
        self.frames += len(packets)

    def _fail(self, err: BaseException) -> None:
        if self._container is not None:
            try:  # the encoder may still hold frames it took before failing
                self._mux(self._stream.encode(None))
            except Exception:
                pass
        kept = f"the {self.frames} frame(s) before it are kept" if self.frames else "nothing was written"
        self.problem = (
            f"{self.path}: output video not finished: the {self.codec or 'video'} encoder failed at frame "
            f"{self._given + 1} ({_one_line(err)}); {kept}"
        )
        log.error("%s", self.problem)

    def _shut(self) -> None:
        container, self._container, self._stream = self._container, None, None  # encoder threads end with it
        try:
            container.close()
        except Exception as err:
            if self.problem is None:
                self._fail(err)
        if self.frames == 0:
            self.path.unlink(missing_ok=True)
