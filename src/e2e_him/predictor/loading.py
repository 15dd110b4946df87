"""Photos read and prepared in background workers while the network runs, and grouped into batches.

A torch `DataLoader` runs `read_image` + `prepare_eval_image` in `workers` processes (0: in the main
process), in input order. `batches` groups consecutive prepared photos of the same padded size into batches
of up to `batch_size` (photos of different sizes are never padded together: GroupNorm statistics would then
depend on the batch). A photo that cannot be read comes out as an item with an `error`, in its place.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from e2e_him.data.io import ImageReadError, read_image
from e2e_him.data.transforms import prepare_eval_image


class PhotoFolder(Dataset):
    """Item i: {"index", "path", "image" (H0, W0, 3) uint8, "tensor" (3, H, W), "meta"} or, for a file that
    cannot be read, {"index", "path", "error"}."""

    def __init__(self, paths: Sequence[Path], eval_size: int | None) -> None:
        self.paths = list(paths)
        self.eval_size = eval_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        try:
            image = read_image(path)
        except ImageReadError as err:
            return {"index": index, "path": path, "error": str(err)}
        tensor, meta = prepare_eval_image(image, self.eval_size, path.name)
        return {"index": index, "path": path, "image": image, "tensor": tensor, "meta": meta}


def _first(items: list[dict[str, Any]]) -> dict[str, Any]:
    return items[0]


def prepared_photos(paths: Sequence[Path], eval_size: int | None, workers: int = 1) -> Iterable[dict]:
    """The items of `PhotoFolder`, in order, prepared by `workers` background processes."""
    dataset = PhotoFolder(paths, eval_size)
    if workers <= 0 or len(dataset) <= 1:
        return (dataset[i] for i in range(len(dataset)))
    return DataLoader(
        dataset,
        batch_size=1,
        num_workers=min(workers, len(dataset)),
        collate_fn=_first,
        prefetch_factor=2,
        persistent_workers=False,
    )


def batches(items: Iterable[dict[str, Any]], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive items with tensors of one size, at most `batch_size` per batch; an error item is its own
    batch (so that it is reported in order)."""
    pending: list[dict[str, Any]] = []
    for item in items:
        if "error" in item:
            if pending:
                yield pending
                pending = []
            yield [item]
            continue
        if pending and (len(pending) >= batch_size or pending[0]["tensor"].shape != item["tensor"].shape):
            yield pending
            pending = []
        pending.append(item)
    if pending:
        yield pending


def stack(batch: list[dict[str, Any]]) -> torch.Tensor:
    """(B, 3, H, W) input of a batch from `batches`."""
    return torch.stack([item["tensor"] for item in batch])
