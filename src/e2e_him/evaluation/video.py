"""Scoring one video's predicted mattes: per-frame instance metrics, MaGGIe's errors and temporal metrics.

`score_video(task, options)` runs in a worker. Every frame is scored as an image (Eq. 20, IMQ: people
matched frame by frame). MaGGIe's per-person errors and dtSSD / MESSDdt need one prediction per person for
the whole video: people are paired once per video, by name (`pairing="name"`, for mask-guided methods whose
outputs keep the guidance ids) or by IoU summed over the frames (`pairing="iou"`, e.g. our own tracked
predictions). A person missing from a frame's ground truth is zero there; a missed person, or one absent
from some predicted frames, is predicted as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from e2e_him.data.io import ImageReadError, read_alpha
from e2e_him.data.video_folder import frame_key, index_frames
from e2e_him.evaluation.folders import Problem, read_mattes
from e2e_him.evaluation.scoring import (
    ImageResult,
    PairSums,
    ScoreOptions,
    instance_row,
    instance_statistics,
)
from e2e_him.metrics.maggie import image_errors
from e2e_him.metrics.matching import mask_counts, pair_by_iou, pair_by_name
from e2e_him.metrics.temporal import (
    dtssd_maggie,
    dtssd_usual,
    gt_flow,
    maggie_groups,
    messddt_maggie,
    messddt_usual,
)


@dataclass(frozen=True)
class VideoTask:
    """One video: name, split (group), frames (frame name, {person: matte file}, photo), prediction folder,
    and every folder where its predictions were looked for (to find prediction folders nobody asked for)."""

    name: str
    group: str
    frames: tuple[tuple[str, dict[str, Path], Path | None], ...]
    pred_dir: Path | None
    looked_in: tuple[Path, ...] = ()


@dataclass
class VideoResult:
    """A video's per-frame results, MaGGIe errors per (frame, person), temporal values, row and problems."""

    name: str
    group: str
    frames: list[ImageResult] = field(default_factory=list)
    maggie: dict[str, np.ndarray] | None = None
    temporal: dict[str, list[float]] = field(default_factory=dict)
    row: dict = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    scored: bool = True


def _read_gt(task: VideoTask) -> tuple[list[str], np.ndarray, np.ndarray, list[Problem]]:
    """people, (F, N, H, W) float32 ground truth (zero where a person has no file), (F, N) presence."""
    people = sorted({p for _, files, _ in task.frames for p in files}, key=frame_key)
    index = {p: k for k, p in enumerate(people)}
    first = next((f for _, files, _ in task.frames for f in files.values()), None)
    if first is None:
        return people, np.zeros((0, 0, 0, 0), np.float32), np.zeros((0, 0), bool), []
    try:
        h, w = read_alpha(first).shape
    except ImageReadError as err:
        return (
            people,
            np.zeros((0, 0, 0, 0)),
            np.zeros((0, 0), bool),
            [Problem(str(first), str(err), "video not scored")],
        )
    gt = np.zeros((len(task.frames), len(people), h, w), np.float32)
    present = np.zeros((len(task.frames), len(people)), bool)
    problems = []
    for t, (_, files, _) in enumerate(task.frames):
        for p, f in files.items():
            try:
                a = read_alpha(f)
            except ImageReadError as err:
                problems.append(Problem(str(f), f"ground truth unreadable ({err})", "video not scored"))
                continue
            if a.shape != (h, w):
                problems.append(
                    Problem(str(f), f"ground truth {a.shape} differs from {(h, w)}", "video not scored")
                )
                continue
            gt[t, index[p]] = a
            present[t, index[p]] = True
    return people, gt, present, problems


def _shown(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (" ..." if len(names) > most else "")


def _read_pred(task: VideoTask, size, options: ScoreOptions, problems: list[Problem]):
    """pred people, (F, P, H, W) float32 predictions (zeros where absent), frames without a folder."""
    frames, names = {}, {}
    if task.pred_dir is not None:
        for k, v in index_frames(Path(task.pred_dir)).items():
            frames[frame_key(k)], names[frame_key(k)] = v, k
    wanted = {frame_key(name) for name, _, _ in task.frames}
    extra = [names[k] for k in frames if k not in wanted]
    if extra:
        problems.append(
            Problem(
                str(task.pred_dir),
                f"{len(extra)} predicted frames without ground truth ({_shown(extra)})",
                "ignored",
            )
        )
    per_frame, missing = [], []
    for name, _, _ in task.frames:
        files = frames.get(frame_key(name))
        if files is None:
            missing.append(name)
            per_frame.append(({}, None))
            continue
        ordered = sorted(files.items(), key=lambda kv: frame_key(kv[0]))
        m = read_mattes(Path(task.pred_dir or "."), size, options.resize, files=[f for _, f in ordered])
        problems += m.problems
        per_frame.append((dict(zip(m.names, m.alphas)), m))
    people = sorted({p for d, _ in per_frame for p in d}, key=frame_key)
    index = {p: k for k, p in enumerate(people)}
    pred = np.zeros((len(task.frames), len(people), *size), np.float32)
    for t, (d, _) in enumerate(per_frame):
        for p, a in d.items():
            pred[t, index[p]] = a
    return people, pred, missing


def pair_people(
    pred: np.ndarray, gt: np.ndarray, pred_names, gt_names, options: ScoreOptions
) -> list[int | None]:
    """For each ground-truth person, its predicted person for the whole video (or None)."""
    if options.pairing == "name":
        return pair_by_name(pred_names, gt_names)
    inter = np.zeros((pred.shape[1], gt.shape[1]))
    union = np.zeros_like(inter)
    th = options.binarize_threshold
    for t in range(gt.shape[0]):
        i, p_area, g_area = mask_counts(pred[t] > th, gt[t] > th)
        inter += i
        union += p_area[:, None] + g_area[None, :] - i
    return pair_by_iou(np.where(union > 0, inter / np.maximum(union, 1.0), 0.0))


def score_video(task: VideoTask, options: ScoreOptions) -> VideoResult:
    """Score one video with `options.metrics` (runs in a worker process)."""
    result = VideoResult(task.name, task.group)
    gt_people, gt, present, problems = _read_gt(task)
    result.problems += problems
    if problems or gt.ndim != 4 or gt.shape[-1] == 0:
        result.scored = False
        result.row = {"name": task.name, "group": task.group, "scored": False}
        if not problems:
            result.problems.append(
                Problem(task.name, "no ground-truth matte in any frame", "video not scored")
            )
        return result
    size = gt.shape[-2:]
    if task.pred_dir is None:
        result.problems.append(
            Problem(task.name, "no prediction folder for the video", "its people count as missed")
        )
    pred_people, pred, missing = _read_pred(task, size, options, result.problems)
    if task.pred_dir is not None and missing:
        result.problems.append(
            Problem(
                str(task.pred_dir),
                f"no prediction for {len(missing)} frames ({_shown(missing)})",
                "their people count as missed",
            )
        )
    paired = pair_people(pred, gt, pred_people, gt_people, options)
    # per frame: Eq. 20 / IMQ on the people of that frame
    for t, (frame, _, _) in enumerate(task.frames):
        fr = _frame_result(task, t, frame, pred[t], pred_people, gt[t], gt_people, present[t], options)
        result.frames.append(fr)
    if "maggie" in options.metrics:
        result.maggie, where = _maggie_video(pred, gt, present, paired, options)
        for t, fr in enumerate(result.frames):  # per-frame means in the frame rows
            for key, values in result.maggie.items():
                v = values[where == t]
                v = v[np.isfinite(v)]
                fr.row[key] = float(v.mean()) if len(v) else None
    if "temporal" in options.metrics:
        result.temporal = _temporal(pred, gt, paired, options)
    result.row = {
        "name": task.name,
        "group": task.group,
        "scored": True,
        "frames": len(task.frames),
        "people": len(gt_people),
        "missed_people": sum(p is None for p in paired),
        "frames_without_prediction": len(missing),
        **{k: float(np.mean(v)) if len(v) else None for k, v in result.temporal.items()},
    }
    return result


def _frame_result(task, t, frame, pred_t, pred_people, gt_t, gt_people, present_t, options) -> ImageResult:
    name = f"{task.name}/{frame}"
    shown = [k for k in range(len(pred_people)) if pred_t[k].any()]  # people predicted in this frame
    pred_f = pred_t[shown]
    gt_f = gt_t[present_t]
    gt_names = [gt_people[k] for k in np.flatnonzero(present_t)]
    fr = ImageResult(name, task.group)
    fr.match, fr.imq = instance_statistics(pred_f, gt_f, options, PairSums(pred_f, gt_f))
    row = {"name": name, "group": task.group, "scored": True, "video": task.name, "frame": frame}
    if fr.match is not None:
        people = [gt_names[k] for k in range(len(gt_f)) if gt_f[k].any()]
        row.update(
            instance_row(name, fr.match, options.iou_thresholds, people, [pred_people[k] for k in shown])
        )
    fr.row = row
    return fr


def _maggie_video(
    pred, gt, present, paired, options: ScoreOptions
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-(frame, person) MaGGIe errors, frames grouped as MaGGIe's code groups them (Grad normalisation),
    and the frame index of each value."""
    frame_groups, _ = maggie_groups(gt.shape[0], options.video_protocol)
    chunks: list[dict[str, np.ndarray]] = []
    frames: list[int] = []
    for group in frame_groups:
        preds, gts = [], []
        for t in group:
            for g in np.flatnonzero(present[t]):
                p = paired[g]
                preds.append(pred[t, p] if p is not None else None)
                gts.append(gt[t, g])
                frames.append(t)
        if gts:
            chunks.append(image_errors(preds, gts, options.grad_conn))
    if not chunks:
        return {}, np.zeros(0, np.int64)
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}, np.array(frames)


def _temporal(pred, gt, paired, options: ScoreOptions) -> dict[str, list[float]]:
    """dtSSD / MESSDdt of every ground-truth person: usual per frame pair, MaGGIe's per frame group."""
    _, groups = maggie_groups(gt.shape[0], options.video_protocol)
    out: dict[str, list[float]] = {"dtSSD_maggie": [], "dtSSD_x1e2": []}
    if options.messddt:
        out.update({"MESSDdt_maggie": [], "MESSDdt_x1e3": []})
    for g, p in enumerate(paired):
        g_seq = gt[:, g]
        p_seq = pred[:, p] if p is not None else np.zeros_like(g_seq)
        if len(g_seq) < 2:
            continue
        out["dtSSD_x1e2"] += list(dtssd_usual(p_seq, g_seq))
        out["dtSSD_maggie"] += [dtssd_maggie(p_seq[grp], g_seq[grp]) for grp in groups]
        if options.messddt:
            flows = [gt_flow(g_seq[t], g_seq[t + 1]) for t in range(len(g_seq) - 1)]
            out["MESSDdt_x1e3"] += list(messddt_usual(p_seq, g_seq, flows))
            out["MESSDdt_maggie"] += [
                messddt_maggie(p_seq[grp], g_seq[grp], flows[grp[0] : grp[-1]]) for grp in groups
            ]
    return out
