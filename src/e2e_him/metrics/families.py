"""The metric families by name, and the one builder that makes them: for training's validation and test
(`models.module.E2EHIMModule`) and for `eval` (`evaluation.runner.MetricSet`), so that both compute the same
numbers from the same definitions.

Kinds: "instance" (E2E-HIM's EMSE / EMAD / REC / ACC, Eq. 20), "imq" (InstMatt's IMQ), "imq_lite" (IMQ from
MAD and MSE only), "human" (whole-image SAD / MSE / MAD / Grad / Conn), "maggie" (MaGGIe's per-person errors),
"temporal" (dtSSD, MESSDdt of videos).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torchmetrics import Metric

from e2e_him.metrics.human_matting import HumanMattingMetrics
from e2e_him.metrics.imq import IMQMetric, LiteIMQMetric
from e2e_him.metrics.instance_matting import InstanceMattingMetrics
from e2e_him.metrics.maggie import MaggieMetrics
from e2e_him.metrics.temporal import TemporalMetrics

METRIC_KINDS = ("instance", "imq", "imq_lite", "human", "maggie", "temporal")
COSTLY = {"imq": "imq_lite"}  # kinds whose cheaper form validation uses by default


def build_metrics(
    kinds: Sequence[str],
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    binarize_threshold: float = 0.5,
    grad_conn: bool = True,
    messddt: bool = True,
) -> dict[str, Metric]:
    """A fresh metric object per kind, in the order of `kinds`.

    Args:
        kinds: any of `METRIC_KINDS`.
        iou_thresholds: TH of Eq. 20 and of IMQ (paper: 0.5 and 0.75).
        binarize_threshold: mask level of Eq. 20's IoU (IMQ keeps InstMatt's 0).
        grad_conn: Grad and Conn of the "human" and "maggie" families (IMQ always needs them).
        messddt: MESSDdt of the "temporal" family (optical flow per person and frame pair: the slowest).

    Raises:
        ValueError: an unknown kind, naming the known ones.
    """
    unknown = [k for k in kinds if k not in METRIC_KINDS]
    if unknown:
        raise ValueError(f"unknown metric kind(s) {unknown}; choose from {list(METRIC_KINDS)}")
    ths = tuple(float(t) for t in iou_thresholds)
    makers: dict[str, Callable[[], Metric]] = {
        "instance": lambda: InstanceMattingMetrics(ths, binarize_threshold=binarize_threshold),
        "imq": lambda: IMQMetric(ths),
        "imq_lite": lambda: LiteIMQMetric(ths),
        "human": lambda: HumanMattingMetrics(grad_conn=grad_conn),
        "maggie": lambda: MaggieMetrics(grad_conn=grad_conn),
        "temporal": lambda: TemporalMetrics(messddt=messddt),
    }
    return {k: makers[k]() for k in kinds}


def validation_kinds(kinds: Sequence[str]) -> list[str]:
    """The default validation metrics for test metrics `kinds`: each costly kind in its cheap form."""
    return [COSTLY.get(k, k) for k in kinds]
