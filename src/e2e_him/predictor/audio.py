"""The input's sound in the videos predict writes: its first audio track, in sync with the picture (PyAV).

The track is copied packet by packet when an MP4 holds its codec and players play it there (AAC, MP3, Opus,
FLAC, AC-3, E-AC-3, ALAC), else re-encoded to AAC (Vorbis, PCM, ...). Its timestamps move with the picture's:
both start at the first frame predict keeps, so what was in sync stays in sync. Packets are read as the
picture is written (a second reader of the input file), so memory does not grow with the video's length.
Sound longer than the picture is kept whole, as in the input; `finish(end)` cuts it where the picture stops
when `max_frames` shortened it (at a packet boundary, about 20 ms for AAC). A failure drops the rest of the
sound, never the picture, and `note` says so.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
COPIED = ("aac", "mp3", "opus", "flac", "ac3", "eac3", "alac")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


class AudioTrack:
    """The sound of `source` for one output video.

    Args:
        source: the input video file.
        origin: seconds (in the input's timeline) that become time 0 of the output: its first kept frame.

    Attributes:
        note: what happened to the sound, for summary.json ("copied (aac)", "re-encoded ...", "none ...").
    """

    def __init__(self, source: Path, origin: float = 0.0) -> None:
        self.source, self.origin = Path(source), origin
        self.note = "none (the input has no sound)"
        self._input: Any = None
        self._packets: Any = None
        self._output: Any = None
        self._encoder: Any = None
        self._resampler: Any = None
        self._ahead: Any = None  # a packet read but not yet due
        self._done = False
        self._failed = False

    def attach(self, container: Any) -> None:
        """Add the sound's stream to `container` (an output opened by PyAV, before its first packet)."""
        import av

        try:
            self._input = av.open(str(self.source))
        except (av.FFmpegError, OSError) as err:
            self._drop(f"dropped (the input's sound cannot be read: {_one_line(err)})")
            return
        if not self._input.streams.audio:
            self._close_input()
            self._done = True
            return
        stream = self._input.streams.audio[0]
        name = stream.codec_context.name
        try:
            if name in COPIED and name in container.supported_codecs:
                self._output = container.add_stream_from_template(stream)
                self.note = f"copied ({name})"
            else:  # decoded, resampled (more than 2 channels: down to stereo) and encoded again
                rate = stream.codec_context.sample_rate or 48000
                layout = "stereo" if stream.codec_context.layout.nb_channels > 1 else "mono"
                self._encoder = container.add_stream("aac", rate=rate, layout=layout)
                self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
                self.note = f"re-encoded to AAC (an MP4 does not hold the input's {name})"
        except (av.FFmpegError, ValueError) as err:
            self._drop(f"dropped (its {name} cannot go into the video: {_one_line(err)})")
            return
        self._packets = self._input.demux(stream)

    def write_until(self, container: Any, seconds: float | None) -> None:
        """Write the sound up to `seconds` of the output, or all of it (None). Nothing is written ahead of the
        picture, so that a cut at `max_frames` stays exact; the muxer interleaves the two streams."""
        self._pump(container, seconds, cut=False)

    def finish(self, container: Any, end: float | None = None) -> None:
        """Write the rest of the sound, up to `end` seconds of the output when given (the rest is cut)."""
        self._pump(container, end, cut=end is not None)
        if end is not None and self._packets is not None and not self._failed:
            self.note += f", cut at {end:.2f} s where the picture stops (max_frames)"
        self._finish_encoder(container)

    def _pump(self, container: Any, limit: float | None, cut: bool) -> None:
        """Write the packets that start before `limit` seconds of the output (all when None); with `cut`, end
        the sound there."""
        import av

        if self._done or self._packets is None:
            return
        try:
            while True:
                packet = self._ahead or next(self._packets, None)
                self._ahead = None
                if packet is None:
                    self._finish_encoder(container)
                    return
                if packet.pts is None:
                    continue  # a demuxer's empty flush packet
                start = float(packet.pts * packet.time_base) - self.origin
                if limit is not None and (start >= limit if cut else start > limit):
                    self._ahead = None if cut else packet
                    return
                self._write(container, packet, start)
        except (av.FFmpegError, OSError, ValueError) as err:
            self._drop(f"{self.note}, then dropped at {limit or 0:.2f} s ({_one_line(err)})")

    def _write(self, container: Any, packet: Any, start: float) -> None:
        end = start + float((packet.duration or 0) * packet.time_base)
        if end <= 0 and packet.duration:  # wholly before the first kept frame
            return
        if self._output is not None:
            shift = round(self.origin / packet.time_base)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self._output
            container.mux(packet)
            return
        for frame in packet.decode():
            for resampled in self._resampler.resample(frame):
                self._encode(container, resampled)

    def _encode(self, container: Any, frame: Any) -> None:
        if frame is not None:
            time = float(frame.pts * frame.time_base) - self.origin if frame.pts is not None else 0.0
            if time < 0:
                return
            frame.pts, frame.time_base = round(time * frame.sample_rate), Fraction(1, frame.sample_rate)
        container.mux(self._encoder.encode(frame))

    def _finish_encoder(self, container: Any) -> None:
        import av

        if self._encoder is not None and not self._done:
            try:
                for resampled in self._resampler.resample(None):
                    self._encode(container, resampled)
                self._encode(container, None)
            except (av.FFmpegError, OSError, ValueError) as err:
                self.note += f", its end lost ({_one_line(err)})"
        self._done = True
        self._close_input()

    def _drop(self, note: str) -> None:
        self.note, self._done, self._failed = note, True, True
        log.warning("%s: sound %s", self.source, note)
        self._close_input()

    def _close_input(self) -> None:
        if self._input is not None:
            self._input.close()
            self._input = None
