"""Checking an indexed data set at set-up, and the list of files skipped because they are bad.

Sources that index files on disk (`readers.py`) expose `entries` (one per image) and `problems` (orphans found
while indexing). `check_source` adds what the file headers say, without decoding any pixels (PIL opens files
lazily): unreadable or truncated files, mattes whose size differs from their image, people without a matte,
too many people for the model's queries. `apply_policy` then either raises one error listing every problem
with its path (`on_bad_file="error"`) or drops the affected images and writes the list of skipped files
(`on_bad_file="skip"`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from e2e_him.data.io import ImageReadError, is_truncated, read_header

log = logging.getLogger(__name__)

ON_BAD_FILE = ("error", "skip")
ON_TOO_MANY = ("error", "truncate")
MAX_LISTED = 200  # problems written into an exception message; the full list goes to a file


class BadDataError(ValueError):
    """The data set has problems; the message lists each with the path of the file concerned."""


class BadSampleError(ValueError):
    """One image and its mattes do not fit together (found while loading); the message names the files."""


class TooManyInstancesError(ValueError):
    """An image holds more people than the model has queries; the message names the image and the counts."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a data set: the file concerned, why, and the image (entry name) it rules out."""

    path: Path
    reason: str
    name: str | None = None  # None for files that belong to no image (e.g. mattes without an image)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Entry:
    """One indexed image of a data set on disk: its photo and one matte file per person."""

    name: str
    image: Path
    alphas: list[Path]
    masks: list[Path] | None = None  # given instance masks, same order as `alphas`
    boxes: list[list[float]] | None = None  # given (x0, y0, x1, y1) boxes, same order; checked, not used


@dataclass
class CheckReport:
    """What `check_source` found."""

    problems: list[Problem] = field(default_factory=list)
    too_many: list[tuple[str, int]] = field(default_factory=list)  # (name, K) with K > max_instances
    notes: dict[str, int] = field(default_factory=dict)  # counts of odd files that load fine


def _reason(err: Exception, path: Path) -> str:
    """The message of an `ImageReadError` without the leading path (the problem names the path itself)."""
    return str(err).removeprefix(f"{path}: ")


def _check_entry(entry: Entry) -> tuple[list[Problem], list[str]]:
    """Header checks of one image and its mattes; returns problems and notes (odd but loadable files)."""
    problems: list[Problem] = []
    notes: list[str] = []
    try:
        head = read_header(entry.image)
        if is_truncated(entry.image, head.format):
            problems.append(Problem(entry.image, "truncated file (its end is missing)", entry.name))
            return problems, notes
    except ImageReadError as err:
        problems.append(Problem(entry.image, f"unreadable image ({_reason(err, entry.image)})", entry.name))
        return problems, notes
    if head.mode not in ("RGB",):
        notes.append(f"image mode {head.mode}")
    if head.orientation != 1:
        notes.append("EXIF-rotated image")
    if entry.masks is not None and len(entry.masks) != len(entry.alphas):
        problems.append(
            Problem(
                entry.masks[0].parent if entry.masks else entry.image,
                f"{len(entry.masks)} masks for {len(entry.alphas)} mattes of {entry.image.name}",
                entry.name,
            )
        )
    if entry.boxes is not None and len(entry.boxes) != len(entry.alphas):
        problems.append(
            Problem(entry.image, f"{len(entry.boxes)} boxes given for {len(entry.alphas)} mattes", entry.name)
        )
    for kind, paths in (("matte", entry.alphas), ("mask", entry.masks or [])):
        for path in paths:
            try:
                mhead = read_header(path, oriented=False)  # mattes are stored in the photo's displayed frame
                if is_truncated(path, mhead.format):
                    problems.append(Problem(path, f"truncated {kind} file (its end is missing)", entry.name))
                    continue
            except ImageReadError as err:
                problems.append(Problem(path, f"unreadable {kind} ({_reason(err, path)})", entry.name))
                continue
            if mhead.mode not in ("L", "1", "P"):
                notes.append(f"{kind} mode {mhead.mode}")
            if mhead.stored_size != head.size:
                (mh, mw), (h, w) = mhead.stored_size, head.size
                reason = f"{kind} is {mh}x{mw} but its image {entry.image} is {h}x{w}"
                if head.orientation != 1 and mhead.stored_size == head.stored_size:
                    reason += (
                        f" after its EXIF orientation {head.orientation}; the {kind} matches the stored, "
                        "unrotated pixels: mattes must be in the displayed (rotated) frame, so rotate the "
                        "mattes or re-save the photo with its orientation applied"
                    )
                problems.append(Problem(path, reason, entry.name))
    return problems, notes


def check_source(
    source: object, *, max_instances: int | None = None, workers: int = 8, desc: str = "data set"
) -> CheckReport:
    """Check every entry of an indexed source from file headers (threads hide file-system latency).

    Args:
        source: an object with `entries: list[Entry]` and `problems: list[Problem]` (see `readers.py`).
        max_instances: the most people an image may hold (the model's query count); None for no limit.
        workers: threads reading headers.
        desc: how the source is named in log messages.

    Returns:
        The problems (indexing problems included), the images with too many people and counts of odd files.
    """
    entries: Sequence[Entry] = source.entries
    report = CheckReport(problems=list(getattr(source, "problems", [])))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(_check_entry, entries, chunksize=64))
    for entry, (problems, notes) in zip(entries, results):
        report.problems.extend(problems)
        for note in notes:
            report.notes[note] = report.notes.get(note, 0) + 1
        if max_instances is not None and len(entry.alphas) > max_instances:
            report.too_many.append((entry.name, len(entry.alphas)))
    if report.notes:
        odd = ", ".join(f"{n} x {k}" for k, n in sorted(report.notes.items()))
        log.info("%s: odd files that load fine (see docs/data.md): %s", desc, odd)
    return report


def format_problems(problems: Sequence[Problem], limit: int = MAX_LISTED) -> str:
    """One problem per line, at most `limit` lines, then a count of the rest."""
    lines = [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


class SkipLog:
    """The list of skipped files: one `path<TAB>reason` line per file, appended by every process.

    Lines are short and appended with O_APPEND, so data-loader workers can write to the same file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def reset(self) -> None:
        """Create (or empty) the file, with a header line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("# files skipped by e2e_him (on_bad_file=skip): path<TAB>reason\n")

    def add_all(self, problems: Iterable[Problem], tag: str = "") -> None:
        """Append the problems found at set-up; `tag` (e.g. the split) prefixes each reason."""
        for p in problems:
            self.add(p.path, f"{tag}{p.reason}")

    def add(self, path: str | Path, reason: str) -> None:
        """Append one skipped file (called at load time, possibly from a worker process)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = f"{path}\t{reason}\n".encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def read(self) -> list[tuple[str, str]]:
        """(path, reason) pairs written so far."""
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            if line and not line.startswith("#"):
                path, _, reason = line.partition("\t")
                rows.append((path, reason))
        return rows


def too_many_summary(
    too_many: Sequence[tuple[str, int]], total: int, max_instances: int | None, desc: str, shown: int = 5
) -> str:
    """One warning for the images that hold more people than the queries (on_too_many=truncate): how many,
    the most people in one, and the first few by name."""
    listed = "; ".join(f"{name} holds {k} people" for name, k in too_many[:shown])
    more = f"; ... and {len(too_many) - shown} more" if len(too_many) > shown else ""
    return (
        f"{desc}: {len(too_many)} of {total} image(s) hold more people than the model's {max_instances} "
        f"queries (up to {max(k for _, k in too_many)}); training keeps the {max_instances} largest people "
        f"of each (on_too_many=truncate), evaluation scores every person: {listed}{more}"
    )


def apply_policy(
    source: object,
    report: CheckReport,
    *,
    on_bad_file: str = "error",
    on_too_many: str = "error",
    max_instances: int | None = None,
    skip_log: SkipLog | None = None,
    desc: str = "data set",
    tag: str = "",
) -> None:
    """Raise on problems, or drop the images they concern from `source.entries` and write the skip list.

    Raises:
        BadDataError: problems were found and `on_bad_file == "error"`; every problem is listed with its path.
        TooManyInstancesError: images hold more than `max_instances` people and `on_too_many == "error"`.

    `skip_log` receives the problems (each reason prefixed by `tag`) in skip mode, and in error mode when they
    are too many to list in the message; None writes nothing.
    """
    if on_bad_file not in ON_BAD_FILE:
        raise ValueError(f"on_bad_file must be one of {ON_BAD_FILE}, got {on_bad_file!r}")
    if on_too_many not in ON_TOO_MANY:
        raise ValueError(f"on_too_many must be one of {ON_TOO_MANY}, got {on_too_many!r}")
    if report.too_many and on_too_many == "error":
        listed = "\n".join(f"  {name}: {k} people" for name, k in report.too_many[:MAX_LISTED])
        raise TooManyInstancesError(
            f"{desc}: {len(report.too_many)} image(s) hold more people than the model's {max_instances} "
            "queries "
            f"(max_instances):\n{listed}\nRaise the query count, or set on_too_many=truncate to keep the "
            f"{max_instances} largest people of each."
        )
    if report.too_many:
        message = too_many_summary(report.too_many, len(source.entries), max_instances, desc)
        log.warning("%s", message)  # into the run's log
        warnings.warn(message, stacklevel=2)
    if not report.problems:
        return
    if on_bad_file == "error":
        full = ""
        if skip_log is not None and len(report.problems) > MAX_LISTED:
            skip_log.add_all(report.problems, tag)
            full = f"\nThe full list is in {skip_log.path}."
        raise BadDataError(
            f"{desc}: {len(report.problems)} problem(s) found while checking the data set:\n"
            f"{format_problems(report.problems)}{full}\n"
            "Fix these files, or set on_bad_file=skip to leave the images concerned out and continue."
        )
    bad = {p.name for p in report.problems if p.name is not None}
    source.entries[:] = [e for e in source.entries if e.name not in bad]
    where = ""
    if skip_log is not None:
        skip_log.add_all(report.problems, tag)
        where = f"; the list is in {skip_log.path}"
    warnings.warn(
        f"{desc}: skipped {len(report.problems)} bad file(s), leaving out {len(bad)} image(s); "
        f"{len(source.entries)} images remain{where}",
        stacklevel=2,
    )
