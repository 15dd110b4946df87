"""Videos as people shoot them, through predict: variable frame rates, sound longer or shorter than the
picture, odd sizes, rotation metadata, the containers of phones and browsers, one-frame clips; the input's
timing and sound kept in what is written; per-person matte videos, video backgrounds, wide track ids, failing
encoders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clips import decoded, gray_frames, make_clip
from omegaconf import OmegaConf
from PIL import Image
from stub_network import stub_predictor

from e2e_him.predictor.backgrounds import Background
from e2e_him.predictor.encoding import VideoWriter
from e2e_him.predictor.outputs import Extras
from e2e_him.predictor.pipeline import predict_video
from e2e_him.predictor.video import VideoStream

GAPS = [0.0, 0.1, 0.2, 0.5, 0.6, 0.65, 1.2, 1.3, 1.31, 1.5]  # a phone's uneven frame times, in seconds


def test_a_variable_frame_rate_clip_gives_each_stored_frame_once_with_its_time(tmp_path: Path):
    make_clip(tmp_path / "vfr.mp4", times=GAPS, sound=2.0)
    out = tmp_path / "out"
    summary = predict_video(stub_predictor(), tmp_path / "vfr.mp4", out, Extras(overlay=True))
    assert summary["frames"] == summary["frames_read"] == summary["frames_expected"] == 10
    assert sorted(p.name for p in (out / "pha" / "vfr").iterdir()) == [f"{i:05d}" for i in range(10)]
    stamps = np.genfromtxt(summary["timestamps"], delimiter=",", names=True)
    assert stamps["frame"].tolist() == list(range(10)) and stamps["time_s"] == pytest.approx(GAPS)
    rate = summary["frame_rate"]
    assert rate["variable"] and rate["shortest_interval_s"] == pytest.approx(0.01)
    assert rate["longest_interval_s"] == pytest.approx(0.55)
    overlay = decoded(out / "vfr_overlay.mp4")  # variable frame rate in, variable frame rate out
    assert overlay["times"] == pytest.approx(GAPS) and overlay["length"] == pytest.approx(1.51)
    assert overlay["sound"]["codec"] == "aac" and overlay["sound"]["end"] == pytest.approx(2.0, abs=0.03)
    assert summary["audio"] == "copied (aac)" and summary["problem"] is None
    # every 3rd frame: the same times, each kept frame lasting until the next, the sound whole
    third = predict_video(stub_predictor(), tmp_path / "vfr.mp4", tmp_path / "third", Extras(), stride=3)
    assert sorted(p.name for p in (tmp_path / "third" / "pha" / "vfr").iterdir()) == [
        "00000", "00003", "00006", "00009"
    ]  # fmt: skip
    overlay = decoded(tmp_path / "third" / "vfr_overlay.mp4")
    assert overlay["times"] == pytest.approx([0.0, 0.5, 1.2, 1.5]) and overlay["length"] == pytest.approx(
        1.51
    )
    assert third["audio"] == "copied (aac)"


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_sound_longer_than_the_picture_is_no_truncation_and_is_kept(tmp_path: Path, suffix: str):
    clip = make_clip(tmp_path / f"dubbed{suffix}", times=[i / 10 for i in range(8)], sound=1.4)
    stream = VideoStream(
        clip
    )  # the last frame lasts 0.01 s (the pattern's 100 fps): the picture ends at 0.71 s
    assert stream.stream_end == pytest.approx(0.71)  # the video stream's end, not the container's 1.4 s
    summary = predict_video(stub_predictor(), clip, tmp_path / "out", Extras(overlay=True))
    assert summary["frames"] == 8 and summary["problem"] is None
    overlay = decoded(tmp_path / "out" / "dubbed_overlay.mp4")
    assert overlay["length"] == pytest.approx(0.71) and overlay["sound"]["end"] == pytest.approx(
        1.4, abs=0.03
    )
    expected = (
        "copied (aac)" if suffix == ".mp4" else "re-encoded to AAC (an MP4 does not hold the input's vorbis)"
    )
    assert summary["audio"] == expected


def test_sound_shorter_than_the_picture_and_max_frames_cutting_it(tmp_path: Path):
    clip = make_clip(tmp_path / "clip.mp4", times=[i / 10 for i in range(10)], sound=0.5)
    summary = predict_video(stub_predictor(), clip, tmp_path / "full", Extras(overlay=True))
    overlay = decoded(tmp_path / "full" / "clip_overlay.mp4")
    assert overlay["length"] == pytest.approx(0.91) and overlay["sound"]["end"] == pytest.approx(
        0.5, abs=0.03
    )
    assert summary["problem"] is None
    cut = predict_video(stub_predictor(), clip, tmp_path / "cut", Extras(overlay=True), max_frames=3)
    overlay = decoded(tmp_path / "cut" / "clip_overlay.mp4")
    assert overlay["times"] == pytest.approx([0.0, 0.1, 0.2]) and overlay["length"] == pytest.approx(0.3)
    assert overlay["sound"]["end"] == pytest.approx(0.3, abs=0.07)  # cut at an AAC packet (64 ms at 16 kHz)
    assert cut["audio"] == "copied (aac), cut at 0.30 s where the picture stops (max_frames)"
    assert cut["problem"] is None


@pytest.mark.parametrize("codec", ["libx264", "libvpx-vp9"])
def test_odd_sizes_are_written_at_the_input_size(tmp_path: Path, codec: str):
    clip = make_clip(tmp_path / "odd.mkv", times=[0.0, 0.1, 0.2, 0.3], size=(63, 47), codec=codec)
    extras = Extras(overlay=True, background=Background("blue"), alpha_video="near_lossless")
    summary = predict_video(stub_predictor(), clip, tmp_path / "out", extras)
    assert summary["size"] == [63, 47] and summary["output_problems"] == []
    for name in ("odd_overlay.mp4", "odd_composite.mp4", "odd_alpha_00.mp4", "odd_alpha_01.mp4"):
        video = decoded(tmp_path / "out" / name)
        assert video["sizes"] == {(63, 47)} and video["times"] == pytest.approx([0.0, 0.1, 0.2, 0.3]), name
    assert decoded(tmp_path / "out" / "odd_overlay.mp4")["codec"] == "vp9"  # H.264 4:2:0 takes no odd size
    assert Image.open(tmp_path / "out" / "pha" / "odd" / "00000" / "00.png").size == (63, 47)


def test_rotation_metadata_is_applied_like_players_do(tmp_path: Path):
    upright = make_clip(tmp_path / "upright.mp4", times=[0.0, 0.1])
    turned = make_clip(tmp_path / "phone.mp4", times=[0.0, 0.1], rotation=90, sound=0.3)
    reference = next(iter(VideoStream(upright))).image
    stream = VideoStream(turned)
    image = next(iter(stream)).image
    np.testing.assert_array_equal(image, np.rot90(reference))  # 90 degrees counter-clockwise, 48 x 64
    summary = predict_video(stub_predictor(), turned, tmp_path / "out", Extras(overlay=True))
    assert summary["rotation"] == 90 and summary["size"] == [48, 64]
    assert Image.open(tmp_path / "out" / "pha" / "phone" / "00000" / "00.png").size == (48, 64)
    assert decoded(tmp_path / "out" / "phone_overlay.mp4")["sizes"] == {(48, 64)}


@pytest.mark.parametrize(
    "name, codec, sound",
    [("phone.mp4", "libx264", "copied (aac)"), ("iphone.mov", "libx264", "copied (aac)"),
     ("browser.webm", "libvpx-vp9", "copied (opus)"),
     ("editor.mkv", "libx264", "re-encoded to AAC (an MP4 does not hold the input's vorbis)")],
)  # fmt: skip
def test_the_containers_phones_and_browsers_produce(tmp_path: Path, name: str, codec: str, sound: str):
    clip = make_clip(tmp_path / name, times=GAPS[:6], codec=codec, sound=0.8)
    summary = predict_video(stub_predictor(), clip, tmp_path / "out", Extras(overlay=True))
    assert summary["frames"] == 6 and summary["problem"] is None and summary["audio"] == sound
    overlay = decoded(tmp_path / "out" / f"{clip.stem}_overlay.mp4")
    assert overlay["times"] == pytest.approx(GAPS[:6]) and overlay["sound"]["end"] == pytest.approx(
        0.8, abs=0.03
    )


def test_a_one_frame_video(tmp_path: Path):
    clip = make_clip(tmp_path / "still.mp4", times=[0.0])
    summary = predict_video(stub_predictor(), clip, tmp_path / "out", Extras(overlay=True))
    assert (
        summary["frames"] == 1 and summary["problem"] is None and summary["frame_rate"]["variable"] is False
    )
    overlay = decoded(tmp_path / "out" / "still_overlay.mp4")
    assert overlay["times"] == [0.0] and overlay["length"] == pytest.approx(0.01)


@pytest.mark.parametrize("mode", ["lossless", "near_lossless"])
def test_per_person_alpha_videos_match_the_png_mattes(tmp_path: Path, mode: str):
    clip = make_clip(tmp_path / "clip.mp4", times=GAPS[:5])
    out = tmp_path / "out"
    # the second person shows up at the third frame: their video is black before
    summary = predict_video(stub_predictor(second_from=2), clip, out, Extras(alpha_video=mode))
    assert summary["alpha_videos"] == {
        "00": str(out / "clip_alpha_00.mp4"),
        "01": str(out / "clip_alpha_01.mp4"),
    }
    for person in ("00", "01"):
        frames = gray_frames(out / f"clip_alpha_{person}.mp4")
        assert len(frames) == 5 and decoded(out / f"clip_alpha_{person}.mp4")["times"] == pytest.approx(
            GAPS[:5]
        )
        for index, frame in enumerate(frames):
            png = out / "pha" / "clip" / f"{index:05d}" / f"{person}.png"
            expected = np.asarray(Image.open(png)) if png.exists() else np.zeros_like(frame)
            error = np.abs(frame.astype(int) - expected)
            if mode == "lossless":
                assert error.max() == 0, (person, index)
            else:
                assert error.mean() < 1.0 and error.max() <= 8, (person, index)
    assert not (out / "pha" / "clip" / "00001" / "01.png").exists()


def test_a_background_video_loops_along_the_input_clock(tmp_path: Path):
    backdrop = make_clip(
        tmp_path / "backdrop.mp4", times=[0.0, 0.2, 0.4]
    )  # 0.41 s: the last frame lasts 0.01 s
    frames = [f.image for f in VideoStream(backdrop)]
    looping, holding = Background(backdrop), Background(backdrop, loop=False)
    for t, k in [
        (0.0, 0),
        (0.19, 0),
        (0.2, 1),
        (0.4, 2),
        (0.41, 0),
        (0.62, 1),
        (0.815, 2),
        (0.83, 0),
        (1.3, 0),
    ]:
        np.testing.assert_array_equal(looping.at((48, 64), t), frames[k])
    np.testing.assert_array_equal(holding.at((48, 64), 1.3), frames[2])
    np.testing.assert_array_equal(looping.at((48, 64), 0.1), frames[0])  # a new input starts again at 0
    assert looping.at((24, 32), 0.0).shape == (24, 32, 3)  # scaled to cover the frame
    clip = make_clip(tmp_path / "clip.mp4", times=GAPS[:7])
    summary = predict_video(
        stub_predictor(), clip, tmp_path / "out", Extras(overlay=False, background=looping)
    )
    composite = decoded(tmp_path / "out" / "clip_composite.mp4")
    assert composite["times"] == pytest.approx(GAPS[:7]) and summary["videos"].keys() == {"composite"}


class ManyIds:
    """A tracker that has issued 99 ids before the video: two people get ids 99, 100, ... 112."""

    def __init__(self) -> None:
        self.ids_issued = 99

    def update(self, alphas: np.ndarray) -> np.ndarray:
        ids = np.arange(self.ids_issued, self.ids_issued + len(alphas))
        self.ids_issued += len(alphas)
        return ids


def test_more_than_100_ids_widen_every_id_name_of_the_video(tmp_path: Path):
    clip = make_clip(tmp_path / "crowd.mp4", times=[i / 10 for i in range(7)])
    out = tmp_path / "out"
    extras = Extras(overlay=False, alpha_video="near_lossless", cutout=True, background=Background("red"))
    summary = predict_video(stub_predictor(), clip, out, extras, tracker=ManyIds())
    assert summary["ids"] == 113 and summary["id_digits"] == 3
    assert sorted(p.name for p in (out / "pha" / "crowd" / "00000").iterdir()) == ["099.png", "100.png"]
    assert sorted(p.name for p in (out / "cutout" / "crowd" / "00006").iterdir()) == ["111.png", "112.png"]
    names = sorted(p.name for p in out.glob("crowd_alpha_*.mp4"))
    assert names == [f"crowd_alpha_{i:03d}.mp4" for i in range(99, 113)]  # one width: sorted = id order
    assert set(summary["alpha_videos"]) == {f"{i:03d}" for i in range(99, 113)}


def test_a_failing_encoder_is_an_output_problem_that_spares_the_rest(tmp_path: Path, monkeypatch):
    """The overlay's encoder fails at its third frame: the overlay keeps two playable frames and is named in
    one line; the composite, the mattes and summary.json are complete, and the input is not blamed."""
    encode, calls = VideoWriter._encode, []

    def failing(self, image, pts, duration):
        if self.path.name.endswith("_overlay.mp4"):
            calls.append(pts)
            if len(calls) == 3:
                raise ValueError("simulated encoder failure\nwith a second line")
        encode(self, image, pts, duration)

    monkeypatch.setattr(VideoWriter, "_encode", failing)
    monkeypatch.setattr("e2e_him.predict.build_predictor", lambda **options: stub_predictor())
    make_clip(tmp_path / "in" / "clip.mp4", times=GAPS[:6], sound=0.8)
    from e2e_him.predict import predict

    cfg = OmegaConf.load(Path(__file__).parents[2] / "conf" / "predict.yaml")
    cfg.merge_with({"input": str(tmp_path / "in"), "output": str(tmp_path / "out"), "ckpt_path": "stub",
                    "background": "green", "workers": 0})  # fmt: skip
    summary = predict(cfg)
    out = tmp_path / "out"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["failed"] == [] and not (out / "failed.txt").exists()
    [problem] = on_disk["output_problems"]
    assert (
        problem.startswith(f"{out / 'clip_overlay.mp4'}: output video not finished") and "\n" not in problem
    )
    assert (
        "simulated encoder failure" in problem
        and "failed at frame 3" in problem
        and "the 2 frame(s) before it are kept" in problem
    )
    [video] = on_disk["videos"]
    assert video["frames"] == 6 and video["problem"] is None and video["output_problems"] == [problem]
    assert video["videos"] == {
        "overlay": str(out / "clip_overlay.mp4"),
        "composite": str(out / "clip_composite.mp4"),
    }
    assert decoded(out / "clip_overlay.mp4")["times"] == pytest.approx(GAPS[:2])
    composite = decoded(out / "clip_composite.mp4")
    assert composite["times"] == pytest.approx(GAPS[:6]) and composite["sound"]["codec"] == "aac"
    assert len(list((out / "pha" / "clip").iterdir())) == 6 and summary == on_disk
