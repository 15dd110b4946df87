"""Where the demo's results go: one folder per input and settings, named by their digest (the same request is
served again from it), packed as one zip beside it; only the newest folders are kept."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any


class ResultFolders:
    """Result folders `<root>/<digest>/` with their zips `<root>/e2e-him-<label>-<digest>.zip`.

    Args:
        root: the folder that holds them (inside the demo's output folder).
        label: a word for the zip's name (what a visitor downloads).
        keep: folders kept, newest first (a folder used again counts as new).
    """

    def __init__(self, root: Path, label: str, keep: int) -> None:
        self.root, self.label, self.keep = Path(root), label, int(keep)

    def folder(self, request: Any) -> Path:
        """The folder of a request (any JSON-serialisable description of the inputs and settings)."""
        digest = hashlib.sha1(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]
        return self.root / digest

    def archive(self, folder: Path) -> Path:
        return folder.with_name(f"e2e-him-{self.label}-{folder.name}.zip")

    def ready(self, folder: Path) -> bool:
        """Whether `folder` holds a finished result (summary.json and its zip); if so it counts as new."""
        if (folder / "summary.json").is_file() and self.archive(folder).is_file():
            os.utime(folder)
            return True
        return False

    def pack(self, folder: Path) -> Path:
        """Zip `folder` (written aside, then moved in place) and drop the oldest folders beyond `keep`."""
        partial = shutil.make_archive(str(folder.with_name(f".{folder.name}.zip")), "zip", root_dir=folder)
        archive = Path(partial).rename(self.archive(folder))
        runs = sorted((p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: p.stat().st_mtime, reverse=True)  # fmt: skip
        for old in runs[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)
            self.archive(old).unlink(missing_ok=True)
        return archive
