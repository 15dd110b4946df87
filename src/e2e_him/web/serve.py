"""Serving the demo on this machine only: Gradio's variables set before it is imported (no analytics, no
version check, uploads kept inside the demo's output folder), then the page launched on 127.0.0.1 with
sharing off."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

# Gradio reads these when imported (or when a Blocks is built): set them first
OFFLINE_ENVIRONMENT = {
    "GRADIO_ANALYTICS_ENABLED": "False",  # no telemetry and no version check (an outgoing request each)
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_SSR_MODE": "False",  # no Node server: the page is served by Python from the installed package
    "GRADIO_MCP_SERVER": "False",
}


def offline_environment(output: Path) -> dict[str, str]:
    """Set Gradio's variables for an offline demo whose uploads go to `<output>/uploads`; returns them."""
    values = {**OFFLINE_ENVIRONMENT, "GRADIO_TEMP_DIR": str(Path(output).resolve() / "uploads")}
    os.environ.update(values)
    return values


def free_port(host: str = "127.0.0.1", start: int = 7860, tries: int = 100) -> int:
    """The first port from `start` that `host` can listen on."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {start}-{start + tries - 1} on {host}: pass port=<number>")


def launch(page: Any, output: Path, host: str, port: int, max_upload_mb: float, open_browser: bool) -> None:
    """Serve `page` (a gradio.Blocks) until interrupted; it may send only files under `output`."""
    from e2e_him.web.page import theme

    page.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=open_browser,
        max_file_size=f"{max_upload_mb}mb",
        allowed_paths=[str(Path(output).resolve())],
        footer_links=["api", "settings"],
        theme=theme(),
        quiet=True,
    )
