"""Learning curves of a training run from its CSV log: every loss term, REC, EMAD and the part IoUs.

    python scripts/plot_training.py outputs/train/<experiment>/<time> [--out curves.png] [--smooth 25]
    python scripts/plot_training.py RUN_A RUN_B --labels baseline aids --out compare.png

Reads `<run>/csv/metrics.csv` (logger `csv`, on in the default logger group) and draws, against optimiser
steps: the training loss terms (moving average over `--smooth` logged steps), the validation REC_0.5 and
REC_0.75, EMAD_0.5, and the matched-query IoUs of the perception masks, trimaps and final mattes
(`val/iou_mask`, `val/iou_trimap`, `val/iou_matte`, metrics/part_iou.py). Several runs are overlaid.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

LOSS_TERMS = ("loss", "loss_cls", "loss_focal", "loss_dice", "loss_tri", "loss_alpha_pu", "loss_alpha_gu",
              "loss_cls_aux", "loss_dice_aux", "loss_person")  # fmt: skip
VAL_PANELS = (
    ("recall", ("val/REC_0.5", "val/REC_0.75")),
    ("EMAD at IoU 0.5", ("val/EMAD_0.5",)),
    ("matched-query IoU", ("val/iou_mask", "val/iou_trimap", "val/iou_matte")),
)
LINE_STYLES = ("-", "--", ":")


def read_log(run: Path) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(step, value), ...]} from `<run>/csv/metrics.csv` (empty cells skipped)."""
    path = run / "csv" / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no CSV log (train with logger=csv or logger=default)")
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with path.open() as f:
        for row in csv.DictReader(f):
            step = int(float(row["step"])) if row.get("step") else None
            if step is None:
                continue
            for key, value in row.items():
                if key != "step" and value not in ("", None):
                    series[key].append((step, float(value)))
    return series


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first values average what there is)."""
    if window <= 1 or len(values) < 2:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    end = np.arange(1, len(values) + 1)
    start = np.maximum(0, end - window)
    return (cumulative[end] - cumulative[start]) / (end - start)


def line_style(run: int, key: int, runs: int) -> dict[str, str]:
    """Matplotlib's next colour per metric for one run; for several, one colour per run and one line style
    per metric of a panel, so that a run keeps its colour in every panel."""
    return {"color": f"C{run}", "linestyle": LINE_STYLES[key % len(LINE_STYLES)]} if runs > 1 else {}


def plot(runs: list[Path], labels: list[str], out: Path, window: int) -> Path:
    logs = [read_log(r) for r in runs]
    terms = [t for t in LOSS_TERMS if any(f"train/{t}_step" in log for log in logs)]
    cols = 4
    rows = -(-(len(terms) + len(VAL_PANELS)) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    panels = [(t, (f"train/{t}_step",)) for t in terms] + list(VAL_PANELS)
    for ax, (title, keys) in zip(axes.flat, panels):
        for i, (log, label) in enumerate(zip(logs, labels)):
            for j, key in enumerate(keys):
                if key not in log:
                    continue
                steps, values = (np.array(v) for v in zip(*log[key]))
                if key.startswith("train/"):
                    values = smooth(values, window)
                name = key.split("/")[-1].replace("_step", "")
                ax.plot(steps, values, marker="" if key.startswith("train/") else "o", ms=3,
                        label=f"{label} {name}" if len(keys) > 1 or len(logs) > 1 else None,
                        **line_style(i, j, len(logs)))  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--labels", nargs="*")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--smooth", type=int, default=25, help="moving-average window of the loss curves")
    args = parser.parse_args(argv)
    labels = args.labels or [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        parser.error("give one label per run")
    out = args.out or args.runs[0] / "curves.png"
    print(plot(args.runs, labels, out, args.smooth))


if __name__ == "__main__":
    main()
