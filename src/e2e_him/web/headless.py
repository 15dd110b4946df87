"""The demo as a visitor meets it, for the browser test and `scripts/demo_screenshot.py`: the app started as a
command on a free localhost port, and its page driven in Debian's Chromium, headless, through Selenium and
Debian's chromedriver (nothing is downloaded: no browser build, no driver manager). Every request the page
makes is recorded, so that a check can prove it reached no other host."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from e2e_him.web.serve import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Chromium as root in a container, on a machine without internet: no sandbox, no GPU, and none of the
# background requests (updates, sync, QUIC probes) that would only fail
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def browser_missing() -> str | None:
    """Why the page cannot be driven here (what to install), or None."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if not missing:
        return None
    return (
        f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver, and "
        'pip install -e ".[dev,demo]" (as .ci/run does)'
    )


@contextmanager
def running_demo(
    overrides: Sequence[str], cwd: Path, timeout: float = 180.0, log: Path | None = None
) -> Iterator[str]:
    """`python -m e2e_him.demo *overrides port=<free>` started in `cwd`; yields its URL once the page answers,
    and stops it (SIGTERM, then SIGKILL) afterwards. Its output goes to `log` (default: `cwd/demo.out`)."""
    # a random first port: two test runs on one machine starting together must not both find 7900 free (the
    # second demo would fail to bind while its test talked to the first one's page)
    port = free_port("127.0.0.1", random.randrange(7900, 9900))
    url = f"http://127.0.0.1:{port}"
    log = log or cwd / "demo.out"
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "e2e_him.demo", *overrides, f"port={port}"],
                                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the demo exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as page:
                    if page.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the demo did not answer in {timeout:.0f} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium (Selenium WebDriver) with a fresh profile, its requests logged."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="e2e_him_chromium_")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page requested since the last call (Chromium's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def foreign(urls: Sequence[str], host: str = "127.0.0.1") -> list[str]:
    """The network requests among `urls` that leave this machine: http(s) and ws(s) to another host than
    `host` or localhost (the browser's own chrome://, data: and blob: URLs stay inside it)."""
    local = {host, "localhost", "127.0.0.1"}
    network = [u for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss")]
    return [u for u in network if urlparse(u).hostname not in local]


def matte_photos(driver: Any, url: str, photos: Sequence[Path], timeout: float = 120.0) -> dict[str, Any]:
    """Open the page, upload `photos` on the Photos tab and wait until its notes and mattes gallery show.
    Returns {"notes": the notes' text, "mattes": captions of the mattes gallery's images}."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#photo-files input[type=file]"))
    upload.send_keys("\n".join(str(Path(p).resolve()) for p in photos))

    def finished(d: Any) -> dict[str, Any] | None:
        notes = d.find_element(By.ID, "photo-notes").text
        if "people at p(human)" not in notes and "skipped" not in notes:
            return None
        images = d.find_elements(By.CSS_SELECTOR, "#mattes img")
        if "people at p(human)" in notes and not images and " 0 people" not in notes:
            return None
        return {"notes": notes, "mattes": [img.get_attribute("alt") or "" for img in images]}

    return wait.until(finished)
