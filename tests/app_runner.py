"""Run one of the package's apps (`python -m e2e_him.<app> overrides...`) as a user does (app tests)."""

from __future__ import annotations

import os
import subprocess
import sys


def run_app(app: str, *overrides: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """`python -m e2e_him.<app> *overrides` with wandb offline and Hydra's full errors; with `check`, a
    non-zero exit fails the test with the ends of its stdout and stderr."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", f"e2e_him.{app}", *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"e2e_him.{app} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc
