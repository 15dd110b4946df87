"""Under DDP the objective's normalisers (|Omega| of Eq. 15/17, the unknown-pixel counts of Eq. 18) are those
of the global batch: 2 processes x batch b give the gradients of 1 process x batch 2b (torchrun, gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_grad_case import PEOPLE, B, OutputTable, loss_and_grads

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("ddp_grad_case.py")


def test_two_processes_give_the_gradients_of_one_with_the_whole_batch(tmp_path: Path):
    out = tmp_path / "ddp.pt"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd = [*torchrun, str(WORKER), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ddp = torch.load(out, weights_only=True)
    assert ddp["world"] == 2

    table = OutputTable()
    loss, grads = loss_and_grads(table, table, torch.arange(B))  # one process, all 2b images
    assert sum(PEOPLE[: B // 2]) != sum(PEOPLE[B // 2 :])  # the halves' own normalisers differ
    # DDP averages gradients over processes, so the mean of the processes' losses is the whole batch's loss
    assert sum(r[0] for r in ddp["losses"]) / 2 == pytest.approx(loss, rel=1e-5)
    assert set(ddp["grads"]) == set(grads)
    for name, g in grads.items():
        assert g.abs().sum() > 0, name
        torch.testing.assert_close(ddp["grads"][name], g, rtol=1e-4, atol=1e-7, msg=name)
    # with each process's own counts the gradients are not those of the whole batch (the test can fail)
    off = [n for n, g in grads.items() if not torch.allclose(ddp["naive_grads"][n], g, rtol=1e-3, atol=1e-6)]
    assert {"masks", "trimaps", "alphas"} <= set(off)
