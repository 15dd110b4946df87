"""A screenshot of the web demo at work (README, docs/demo.md), made as a visitor would: the demo started
with a checkpoint (`python -m e2e_him.demo`, on a free localhost port, writing into a temporary folder),
a photo uploaded in headless Chromium, the page photographed once its mattes show.

    python scripts/demo_screenshot.py --ckpt <checkpoint | authors' file | Hub folder | model.onnx> \\
        --photo ../shared/data/coco_persons/images/000000000785.jpg --out docs/images/demo.jpg \\
        [--set eval_size=320 --set score_threshold=0.5]

Needs the demo's extra and Debian's chromium + chromium-driver (.ci/run installs both). Prints what the page
said (people kept, timings) so that the caption can say it.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

from PIL import Image

from e2e_him.web.headless import (
    browser_missing,
    chromium,
    foreign,
    matte_photos,
    requested_urls,
    running_demo,
)


def screenshot(ckpt: str, photo: Path, out: Path, overrides: list[str], width: int, height: int) -> dict:
    """Start the demo, matte `photo` in Chromium, save the page (its first `height` pixels) to `out`."""
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory(prefix="e2e_him_demo_shot_") as tmp:
        work = Path(tmp)
        with running_demo([f"ckpt_path={ckpt}", f"run_dir={work / 'out'}", *overrides], cwd=work) as url:
            with chromium(width, height) as driver:
                shown = matte_photos(driver, url, [photo], timeout=600)
                driver.execute_script("window.scrollTo(0, 0)")
                headline = " ".join(driver.find_element(By.ID, "model-headline").text.split())
                out.parent.mkdir(parents=True, exist_ok=True)
                picture = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
                picture.save(out, **({"quality": 85} if out.suffix.lower() in (".jpg", ".jpeg") else {}))
                outside = foreign(requested_urls(driver))
    return {"model": headline, "notes": shown["notes"], "mattes": len(shown["mattes"]), "foreign": outside}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True, help="what the demo's ckpt_path= takes")
    parser.add_argument("--photo", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/images/demo.jpg"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a demo override (conf/demo.yaml), repeatable")  # fmt: skip
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1300)
    args = parser.parse_args()
    if reason := browser_missing():
        raise SystemExit(reason)
    facts = screenshot(args.ckpt, args.photo, args.out, args.set, args.width, args.height)
    print(f"wrote {args.out}")
    for key, value in facts.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
