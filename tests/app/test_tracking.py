"""The video tracker used by `predict`: ids that follow each person, also through brief occlusions."""

from __future__ import annotations

import numpy as np

from e2e_him.predictor.tracking import IoUTracker, id_switches, mask_iou


def test_mask_iou_by_hand():
    a = np.zeros((1, 2, 4), dtype=bool)
    a[0, :, :2] = True  # 4 pixels
    b = np.zeros((2, 2, 4), dtype=bool)
    b[0, :, 1:3] = True  # 4 pixels, 2 shared with a -> IoU 2 / 6
    iou = mask_iou(a, b)
    np.testing.assert_allclose(iou, [[2 / 6, 0.0]])


def test_tracker_keeps_ids_when_order_changes():
    def frame(boxes):
        alphas = np.zeros((len(boxes), 10, 10), dtype=np.float32)
        for k, (x0, x1) in enumerate(boxes):
            alphas[k, :, x0:x1] = 1.0
        return alphas

    tracker = IoUTracker(min_iou=0.3)
    ids0 = tracker.update(frame([(0, 3), (6, 9)]))
    ids1 = tracker.update(frame([(6, 9), (0, 4)]))  # same two people, listed the other way round
    ids2 = tracker.update(frame([(0, 4), (6, 9), (4, 6)]))  # a third person arrives
    assert list(ids0) == [0, 1]
    assert list(ids1) == [1, 0]
    assert list(ids2) == [0, 1, 2]
    assert list(tracker.update(frame([]))) == []
    assert list(tracker.update(frame([(0, 3)]))) == [0]  # back after one empty frame: its id again
    frame_to_frame = IoUTracker(min_iou=0.3, max_age=0)  # no memory of lost tracks: a new id
    frame_to_frame.update(frame([(0, 3)]))
    frame_to_frame.update(frame([]))
    assert list(frame_to_frame.update(frame([(0, 3)]))) == [1]


def _walk_past(frames: int = 40, width: int = 64) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two people: A stands at x 20-30; B walks from the left edge to the right in front of A, hiding A
    completely for the frames where it covers A's columns (A shrinks to a sliver first). Returns per frame
    the visible mattes (K, 24, width) and their true identities (0 = A, 1 = B)."""
    alphas, ids = [], []
    for t in range(frames):
        b0 = t * (width - 12) // (frames - 1)
        b = np.zeros((24, width), dtype=np.float32)
        b[:, b0 : b0 + 12] = 1.0
        a = np.zeros((24, width), dtype=np.float32)
        a[2:22, 20:30] = 1.0
        a[b > 0] = 0.0  # B is in front
        people = [(m, i) for m, i in ((a, 0), (b, 1)) if m.sum() > 20]  # a hidden sliver is not detected
        order = np.random.default_rng(t).permutation(len(people))  # the network lists people in any order
        alphas.append(np.stack([people[k][0] for k in order]))
        ids.append(np.array([people[k][1] for k in order]))
    return alphas, ids


def test_tracker_keeps_the_id_of_a_person_hidden_for_a_few_frames():
    alphas, truth = _walk_past()
    hidden = [t for t, ids in enumerate(truth) if 0 not in ids]
    assert 2 <= len(hidden) <= 10, hidden  # the scene really hides A for a few frames
    masks = [a > 0.5 for a in alphas]
    remembering, forgetting = IoUTracker(), IoUTracker(max_age=0)
    kept = [remembering.update(a) for a in alphas]
    lost = [forgetting.update(a) for a in alphas]
    assert id_switches(masks, truth, masks, kept) == 0
    assert remembering.ids_issued == 2
    assert id_switches(masks, truth, masks, lost) == 1  # the frame-to-frame tracker gives A a new id
    assert forgetting.ids_issued == 3


def test_tracker_forgets_after_max_age_and_new_people_get_new_ids():
    tracker = IoUTracker(max_age=3)
    person = np.zeros((1, 10, 10), dtype=np.float32)
    person[0, 2:8, 2:5] = 1.0
    assert list(tracker.update(person)) == [0]
    for _ in range(4):  # hidden longer than max_age
        tracker.update(person[:0])
    assert list(tracker.update(person)) == [1]
    elsewhere = np.zeros((1, 10, 10), dtype=np.float32)
    elsewhere[0, 2:8, 7:10] = 1.0  # no overlap with the lost track: not its id
    tracker.update(person[:0])
    assert list(tracker.update(elsewhere)) == [2]


def test_id_switches_counts_changes_of_the_matched_id():
    m = np.zeros((2, 4, 4), dtype=bool)
    m[0, :, :2] = True
    m[1, :, 2:] = True
    gt = [m, m, m, m]
    gt_ids = [np.array([0, 1])] * 4
    pred_ids = [np.array([5, 6]), np.array([5, 6]), np.array([6, 5]), np.array([6, 5])]  # swapped once
    assert id_switches(gt, gt_ids, gt, pred_ids) == 2  # both people switch at frame 2
    assert id_switches(gt, gt_ids, [m[:0]] * 4, [np.zeros(0)] * 4) == 0  # nothing matched, nothing switched
