"""A least-recently-used cache bounded by bytes, for the demo's per-photo network outputs, people and
foreground colours (a slider moved back finds its results again)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import torch


def nbytes(value: Any) -> int:
    """Memory held by arrays and tensors inside `value` (dicts, lists and tuples are walked)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    return 0


class BytesLru:
    """Values by key, the least recently used dropped once the total exceeds `max_bytes` (the newest value
    is always kept, however large). `made` counts the values computed, `hits` the values found."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.made = 0
        self.hits = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value of `key`, computed by `make()` when absent."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key][0]
        value = make()
        with self._lock:
            self.made += 1
            self._items[key] = (value, nbytes(value))
            self._items.move_to_end(key)
            total = sum(size for _, size in self._items.values())
            while len(self._items) > 1 and total > self.max_bytes:
                _, (_, size) = self._items.popitem(last=False)
                total -= size
        return value
