"""Under DDP a non-finite output on one process skips the step on every process, instead of the matcher
raising on that process while the others wait for it until the collective times out (torchrun, gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_nonfinite_case.py")


@pytest.mark.slow
def test_a_nan_output_on_one_process_skips_the_step_on_both(tmp_path: Path):
    out = tmp_path / "ranks.pt"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(WORKER),
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr[-5000:]
    ranks = torch.load(out, weights_only=False)
    assert len(ranks) == 2
    for r in ranks:
        start, (step0, step1, step2) = r["start"], r["after"]
        assert not torch.equal(step0, start) and not torch.equal(step2, step1)  # steps 0 and 2 train
        assert torch.equal(step1, step0)  # step 1 (NaN on rank 1 only) is skipped: nothing moves
        assert torch.isfinite(step2).all()
        assert r["skipped"] == 1 and r["adam_steps"] == [2]  # AdamW's moments skipped the step too
    for a, b in zip(ranks[0]["after"], ranks[1]["after"]):
        assert torch.equal(a, b)  # the processes stay in step
