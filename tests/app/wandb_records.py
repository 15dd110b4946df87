"""Read the records of an offline wandb run file (`run-<id>.wandb`) for tests.

The file is a LevelDB-style log (a 7-byte header, then 32 KiB blocks of records with a 7-byte header each:
CRC32, length, type FULL/FIRST/MIDDLE/LAST) of `wandb_internal_pb2.Record` protobufs. wandb >= 0.20 no
longer ships a Python reader, so this is one.
"""

from __future__ import annotations

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK, HEADER, FILE_HEADER = 32768, 7, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> list[pb.Record]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a wandb run file")
    records, pending, pos = [], b"", FILE_HEADER
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the rest of the block is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def logged_keys(path: str | Path) -> dict[str, set[str]]:
    """{"history": top-level keys logged with wandb.log, "config": top-level config keys} of a run file."""
    keys: dict[str, set[str]] = {"history": set(), "config": set()}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            keys["history"] |= {item.key or item.nested_key[0] for item in record.history.item}
        elif kind == "config":
            keys["config"] |= {item.key or item.nested_key[0] for item in record.config.update}
    return keys
