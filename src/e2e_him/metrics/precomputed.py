"""Statistics computed outside a metric (in a worker process), handed to the metric through its `update`.

torchmetrics wraps every `Metric.update`: the wrapper counts the updates (`compute` warns when there was
none), drops the cached result of `compute` and applies the metric's `compute_on_cpu`. States changed by
any other method miss that bookkeeping, and the only alternative, setting the wrapper's private attributes
by hand, breaks when torchmetrics changes them. So a metric's `accumulate(stats)` calls its own public
`update(Precomputed(stats))`, and `update` adds such statistics to the states as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Precomputed:
    """Per-image statistics of a metric computed elsewhere (e.g. `scoring.score_image`), for its `update`."""

    stats: Any
