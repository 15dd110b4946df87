"""Collect a multirun's final metrics into the paper's Table VII (ablations) or VIII (backbones).

    python -m e2e_him.train -m experiment=var1,var2,var3,var4,var5,var6,paper_r50 data.root=...
    python scripts/collect_table.py multirun/train/<time>            # -> <dir>/table7.md and table7.csv
    python scripts/collect_table.py multirun/train/<time> --table 8 --out results/backbones

Every run dir below the given folder (one with `.hydra/config.yaml` or `metrics.json`) becomes a row; runs
without `metrics.json` are listed as missing rather than dropped. The paper's numbers sit in the last columns.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from e2e_him.evaluation.tables import build_table, collect_runs, detect_table, write_table

TITLES = {
    "7": "Table VII: guidance heads, queries, feature fusion and refiner (ours | paper, HIM-100K, ResNet-50)",
    "8": "Table VIII: backbones (ours | paper, HIM-100K, 20 queries)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, help="a multirun dir (or any folder of run dirs)")
    parser.add_argument("--table", choices=["7", "8", "auto"], default="auto")
    parser.add_argument("--out", type=Path, default=None, help="output path stem (default <runs>/table<N>)")
    args = parser.parse_args(argv)
    runs = collect_runs(args.runs)
    table = detect_table(runs) if args.table == "auto" else args.table
    header, rows = build_table(runs, table)
    files = write_table(header, rows, args.out or args.runs / f"table{table}", TITLES[table])
    print(files["markdown"].read_text())
    missing = [r for r in runs if r.metrics is None]
    print(f"{len(runs)} run(s), {len(missing)} without metrics; wrote {files['markdown']} and {files['csv']}")
    return 1 if missing and len(missing) == len(runs) else 0


if __name__ == "__main__":
    sys.exit(main())
