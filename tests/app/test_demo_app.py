"""The web demo as a user starts it (`python -m e2e_him.demo`, on a free localhost port, with a checkpoint of
the quickstart's smoke-sized network): called through `gradio_client`, a photo gives the mattes `predict`
writes for it, a clip its videos (the overlay and composite with the clip's sound, a matte video per person)
and a broken file a message while the
app keeps answering; opened in headless Chromium, the page shows one matte per kept person and asks no other
host for anything; nothing is written outside the demo's output folder."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from clips import decoded, make_clip
from PIL import Image

from e2e_him.predict import predict
from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build, plain_config
from e2e_him.web.headless import (
    browser_missing,
    chromium,
    foreign,
    matte_photos,
    requested_urls,
    running_demo,
)

pytest.importorskip("gradio", reason='the demo needs its extra: pip install -e ".[demo]"')
gradio_client = pytest.importorskip("gradio_client")

pytestmark = pytest.mark.slow
# an untrained network: a low threshold keeps people; every setting the demo and predict share
SETTINGS = ["score_threshold=0.3", "min_area=0", "eval_size=128", "precision=fp32"]
LIMITS = ["max_upload_mb=1", "max_video_frames=3"]


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> dict:
    """The demo of a smoke checkpoint, started in an empty folder `work` with its output in `work/out`."""
    tmp = tmp_path_factory.mktemp("demo_app")
    cfg = compose_config("train", ["debug=smoke"], output_dir=tmp / "run")
    torch.manual_seed(0)
    module = build(cfg.model, "model").eval()
    ckpt = tmp / "smoke.ckpt"
    config = {"model": plain_config(cfg.model), "data": plain_config(cfg.data)}
    torch.save({"state_dict": module.state_dict(), "e2e_him_config": config}, ckpt)
    rng = np.random.default_rng(0)
    photo = tmp / "photos" / "people.jpg"
    photo.parent.mkdir()
    Image.fromarray(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(photo)
    work = tmp / "work"
    work.mkdir()
    overrides = [f"ckpt_path={ckpt}", f"run_dir={work / 'out'}", *SETTINGS, *LIMITS]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")  # the demo's torch on one thread, as the reference predict (below)
        with running_demo(overrides, cwd=work, log=tmp / "demo.out") as url:
            yield {"url": url, "ckpt": ckpt, "photo": photo, "work": work, "tmp": tmp}


def _on_one_thread(run, *args):
    """`run(*args)` with torch on one thread, as the demo runs: the untrained network's mattes change by up to
    200 levels at some pixels with the thread count, and numba (pymatting, run earlier in this process) may
    have changed it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(*args)
    finally:
        torch.set_num_threads(threads)


def _people(notes: str) -> int:
    return int(re.search(r"(\d+) people at p\(human\)", notes).group(1))


def test_a_photo_through_gradio_client_gives_predicts_mattes(app):
    client = gradio_client.Client(app["url"], verbose=False, download_files=str(app["tmp"] / "client"))
    photo = gradio_client.handle_file(str(app["photo"]))
    notes, overlays, mattes, composites, archive, scores = client.predict(
        [photo], 0.3, 128, "#00b140", None, "", api_name="/photos"
    )
    assert _people(notes) == len(mattes) == len(scores["people"]) > 0
    assert len(overlays) == len(composites) == 1 and archive.endswith(".zip")

    cfg = compose_config("predict", [f"ckpt_path={app['ckpt']}", f"input={app['photo']}",
                                     f"output={app['tmp'] / 'predict'}", *SETTINGS])  # fmt: skip
    _on_one_thread(predict, cfg)
    written = sorted((app["tmp"] / "predict" / "people").glob("*.png"))
    assert len(written) == len(mattes)
    for item, reference in zip(mattes, written):
        assert item["caption"].startswith(f"people #{reference.stem} · ")
        # every query decoded (the demo) against the kept ones (predict): the same up to float rounding
        shown, written = (np.asarray(Image.open(p), dtype=int) for p in (item["image"], reference))
        assert shown.shape == written.shape and np.abs(shown - written).max() <= 1
        assert (shown != written).mean() < 0.005

    broken = app["tmp"] / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n but not a picture")
    notes, *_, archive, _ = client.predict(
        [gradio_client.handle_file(str(broken))], 0.3, 128, "#00b140", None, "", api_name="/photos"
    )
    assert "broken.png is not a photo this demo can read" in notes and archive is None
    assert "Traceback" not in notes and 'File "' not in notes
    fake_clip = app["tmp"] / "clip.mp4"
    fake_clip.write_bytes(b"no frames")
    notes, overlay, *_ = client.predict(gradio_client.handle_file(str(fake_clip)), 0.3, 128, "#00b140", None,
                                        api_name="/video")  # fmt: skip
    assert "clip.mp4 is not a video this demo can read" in notes and overlay is None

    big = app["tmp"] / "big.jpg"
    big.write_bytes(b"\xff" * (3 << 19))  # 1.5 MB: over max_upload_mb=1
    with pytest.raises(Exception, match=r"(?i)too large|exceeds|maximum"):
        client.predict(
            [gradio_client.handle_file(str(big))], 0.3, 128, "#00b140", None, "", api_name="/photos"
        )

    notes, _, again, *_ = client.predict([photo], 0.5, 128, "#00b140", None, "", api_name="/photos")
    assert "network outputs reused" in notes and len(again) == _people(notes)  # still answering, cached
    assert sorted(p.name for p in app["work"].iterdir()) == ["out"]  # the demo wrote only in its folder
    assert {"photos", "uploads"} <= {p.name for p in (app["work"] / "out").iterdir()}


def test_the_page_in_chromium_shows_one_matte_per_kept_person(app, tmp_path: Path):
    if reason := browser_missing():
        pytest.skip(reason)
    with chromium() as driver:
        shown = matte_photos(driver, app["url"], [app["photo"]])
        driver.save_screenshot(str(tmp_path / "demo.png"))
        urls = requested_urls(driver)
    people = _people(shown["notes"])
    assert people > 0 and len(shown["mattes"]) == people
    assert [caption.split(" · ")[0] for caption in shown["mattes"]] == [
        f"people #{k:02d}" for k in range(people)
    ]
    assert Image.open(tmp_path / "demo.png").size[0] > 0
    assert any(app["url"] in url for url in urls) and foreign(urls, "127.0.0.1") == []  # no CDN, no font host


def test_a_clip_through_gradio_client_gives_its_videos_with_sound(app):
    # 6 frames of a test pattern at 10 frames/s, a 1 s tone
    clip = make_clip(app["tmp"] / "talk.mp4", [k / 10 for k in range(6)], size=(160, 96), sound=1.0)
    client = gradio_client.Client(app["url"], verbose=False, download_files=str(app["tmp"] / "clips"))
    notes, overlay, composite, alphas, archive, summary = client.predict(
        gradio_client.handle_file(str(clip)), 0.3, 128, "#00b140", None, api_name="/video"
    )
    assert "talk.mp4: 3 frames" in notes and "stopped after 3 frames" in notes  # max_video_frames=3
    audio = summary["videos"][0]["audio"]
    assert audio.startswith("copied (aac), cut at 0.30 s") and f"carry the clip's sound: {audio}" in notes
    for video in (overlay, composite):  # as the browser receives them: 3 frames and the tone's first 0.3 s
        played = decoded(Path(video))
        assert played["times"] == pytest.approx([0.0, 0.1, 0.2]) and played["sound"]["codec"] == "aac"
        assert played["sound"]["end"] == pytest.approx(0.3, abs=0.07)
    people = summary["videos"][0]["alpha_videos"]
    assert len(alphas) == len(people) == summary["videos"][0]["ids"]
    assert [a["caption"] for a in alphas] == [f"id {person}" for person in sorted(people)]
    assert all(decoded(Path(a["video"]))["sound"] is None for a in alphas)  # the matte videos: silent
    with zipfile.ZipFile(archive) as packed:
        names = packed.namelist()
    assert {"talk_composite.mp4", "talk_overlay.mp4", "fgr/talk/00002.jpg", *people.values()} <= set(names)
    assert "fgr/talk/00003.jpg" not in names
