"""The benchmark scripts run as docs/benchmarks.md calls them (small model and size; timings not checked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load(name: str, monkeypatch: pytest.MonkeyPatch):
    """scripts/<name>.py as a module, with scripts/ importable (as when it runs as a script)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_infer_prints_a_row_per_variant_on_the_kept_queries(capsys, monkeypatch):
    bench = load("bench_infer", monkeypatch)
    bench.main(["experiment=quickstart", "--size", "64", "--rounds", "1", "--variants", "fp32,fp32-cl",
                "--keep-scores-above", "0.0", "--parts"])  # fmt: skip
    out = capsys.readouterr().out
    assert "10 of 10 queries above 0.0" in out
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if line.startswith("| fp32")}
    assert set(rows) == {"fp32", "fp32-cl"}
    assert rows["fp32"].split(" | ")[2] == "1.00"  # the baseline against itself
    # fp32 against its own reference: the decoded subset of queries rounds a little otherwise on 2 threads
    mad, largest, logits = (float(c) for c in rows["fp32"].strip("| ").split(" | ")[3:])
    assert mad < 1e-6 and largest < 1e-4 and logits == 0.0
    assert "per part" in out and "backbone" in out


def test_bench_precision_puts_bf16_in_one_part_at_a_time(monkeypatch):
    bench = load("bench_precision", monkeypatch)
    table = {label: d for label, _, d in bench.main(["experiment=quickstart", "--size", "64"])}
    parts = ["stem", "backbone", "perception", "guidance", "matting"]  # the paper layout's children
    expected = {"float32", "bf16 everywhere", *(f"bf16 in {p} only" for p in parts)}
    assert set(table) == expected
    assert all(v == 0.0 for v in table["float32"].values())  # float32 against itself
    assert table["bf16 everywhere"]["logits_max"] > 0.0  # bf16 really ran
    assert table["bf16 in matting only"]["logits_max"] == 0.0  # the class head ran in float32
    assert table["bf16 in perception only"]["logits_max"] > 0.0
