"""The demo's video tab without its page (e2e_him.web.videos): predict's video path on a clip, with progress
in frames per second, a frame limit with a note, predict's per-person matte videos, the clip's sound as
summary.json records it, one zip, and files it cannot use named in notes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from people_stub import stub_predictor, write_clip, write_photo
from PIL import Image

from e2e_him.predictor.backgrounds import Background
from e2e_him.predictor.outputs import Extras
from e2e_him.predictor.pipeline import predict_video
from e2e_him.web.videos import ALPHA_VIDEO, VideoDemo, carries_sound


def _streams(path: str | Path) -> dict[str, int]:
    """How many video and audio streams the file holds (what a player finds)."""
    with av.open(str(path)) as container:
        return {"video": len(container.streams.video), "audio": len(container.streams.audio)}


def test_a_clip_gives_predicts_files_videos_and_zip_with_progress(tmp_path: Path):
    clip = write_clip(tmp_path / "in" / "dance.mp4", frames=6)
    predictor = stub_predictor()
    reports = []
    demo = VideoDemo(predictor, tmp_path / "out", max_frames=4)
    result = demo.run(clip, 0.5, 64, "#0000ff", progress=lambda *report: reports.append(report))
    assert [done for done, _, _ in reports] == [1, 2, 3, 4] and all(fps > 0 for _, _, fps in reports)
    assert predictor.backend.calls == 4  # cut after the limit
    notes = result.markdown()
    assert "dance.mp4: 4 frames, 2 person id(s) issued" in notes and "stopped after 4 frames" in notes
    folder = Path(result.overlay).parent
    assert folder.parent == tmp_path / "out" / "videos"
    assert Path(result.overlay).name == "dance_overlay.mp4" and Path(result.composite).is_file()
    video = result.summary["videos"][0]
    assert video["frames"] == 4 and video["mattes"] == "pha/dance"
    assert video["timestamps"] == "dance_timestamps.csv"  # paths as the zip holds them
    assert video["videos"] == {"overlay": "dance_overlay.mp4", "composite": "dance_composite.mp4"}
    assert video["alpha_videos"] == {"00": "dance_alpha_00.mp4", "01": "dance_alpha_01.mp4"}  # as in the zip
    assert [caption for _, caption in result.alpha_videos] == ["id 00", "id 01"]  # one matte video per id
    assert [Path(file) for file, _ in result.alpha_videos] == [folder / "dance_alpha_00.mp4",
                                                                folder / "dance_alpha_01.mp4"]  # fmt: skip
    assert "no sound in the videos: none (the input has no sound)" in notes

    reference = tmp_path / "predict"
    extras = Extras(background=Background("#0000ff"), alpha_video=ALPHA_VIDEO)
    predict_video(stub_predictor(), clip, reference, extras, max_frames=4)
    mattes = sorted(str(p.relative_to(reference)) for p in (reference / "pha").rglob("*.png"))
    assert len(mattes) == 8 and mattes[0] == "pha/dance/00000/00.png"  # 4 frames x 2 people, by id
    for name in mattes:
        np.testing.assert_array_equal(
            np.asarray(Image.open(folder / name)), np.asarray(Image.open(reference / name))
        )
    with zipfile.ZipFile(result.archive) as archive:
        names = set(archive.namelist())
    assert {
        *mattes,
        "fgr/dance/00003.jpg",
        "dance_overlay.mp4",
        "dance_composite.mp4",
        "dance_alpha_01.mp4",
        "summary.json",
    } <= names

    again = demo.run(clip, 0.5, 64, "#0000ff")  # the same clip and settings: served from its folder
    assert predictor.backend.calls == 4 and again.archive == result.archive and again.notes == result.notes
    demo.run(clip, 0.7, 64, None)  # another threshold: predicted again, no composite
    assert predictor.backend.calls == 8


def test_the_clips_sound_is_reported_from_the_summary_and_kept_in_the_videos(tmp_path: Path):
    clip = write_clip(tmp_path / "in" / "talk.mp4", frames=6, sound=2.0)
    result = VideoDemo(stub_predictor(), tmp_path / "out", max_frames=4).run(clip, 0.5, 64, "green")
    audio = result.summary["videos"][0]["audio"]
    assert audio.startswith("copied (aac), cut at 0.40 s")  # max_frames stopped the picture: the sound too
    assert f"the overlay and composite carry the clip's sound: {audio}" in result.markdown()
    assert _streams(result.overlay) == _streams(result.composite) == {"video": 1, "audio": 1}
    silent = {"video": 1, "audio": 0}
    assert [_streams(file) for file, _ in result.alpha_videos] == [silent, silent]  # the matte videos


@pytest.mark.parametrize(
    ("audio", "carried"),
    [
        ("copied (aac)", True),
        ("re-encoded to AAC (an MP4 does not hold the input's vorbis)", True),
        ("copied (aac), cut at 0.30 s where the picture stops (max_frames)", True),
        ("none (the input has no sound)", False),
        ("dropped (the input's sound cannot be read: broken)", False),
        ("not written (no overlay or composite video)", False),
        (None, False),
    ],
)
def test_carries_sound_reads_predicts_audio_notes(audio: str | None, carried: bool):
    assert carries_sound(audio) is carried


def test_files_that_are_no_clip_give_a_note(tmp_path: Path):
    fake = tmp_path / "in" / "fake.mp4"
    fake.parent.mkdir()
    fake.write_bytes(b"no video in here")
    photo = write_photo(tmp_path / "in" / "photo.jpg")
    demo = VideoDemo(stub_predictor(), tmp_path / "out")
    result = demo.run(fake, 0.5, 64, None)
    assert "fake.mp4 is not a video this demo can read" in result.markdown() and result.archive is None
    assert str(tmp_path / "in") not in result.markdown()
    assert list((tmp_path / "out" / "videos").iterdir()) == []  # nothing left behind
    assert "photo.jpg is a photo: use the Photo tab" in demo.run(photo, 0.5, 64, None).markdown()
    assert demo.run(None).markdown() == "- upload a clip to start"
