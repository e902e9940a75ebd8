"""Faces followed across frames (``predict.tracker``) and the rendered
walk-through clip that measures it (``data.clips``)."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.tracking import score
from maskdet import LABELS
from maskdet.data.clips import render_clip
from maskdet.predict.detectors import Detection
from maskdet.predict.predictor import Face
from maskdet.predict.tracker import TRACKS_HEADER, FaceTracker


def _face(box, label, p=0.9):
    rest = (1 - p) / (len(LABELS) - 1)
    return Face(tuple(int(v) for v in box), 0.8, label, {k: p if k == label else rest for k in LABELS})


def test_a_face_moving_across_the_frame_keeps_one_id_through_missed_detections():
    tracker = FaceTracker()
    ids = []
    for n in range(60):
        x = 20 + 8 * n  # 8 px a frame, left to right
        missed = 20 <= n < 24  # the detector loses it for four frames
        shown = tracker.update([] if missed else [_face((x, 100, x + 60, 160), "with_mask")])
        ids += [t.id for t in shown]
        if missed:
            assert shown == []  # a face not found is not drawn
    assert set(ids) == {ids[0]} and len(ids) == 56
    assert tracker.counts() == {"with_mask": 1, "without_mask": 0, "mask_weared_incorrect": 0}


@pytest.mark.parametrize("fps", [8, 40])
def test_a_face_missed_for_under_a_second_keeps_its_id_at_any_frame_rate_and_one_gone_longer_does_not(fps):
    """The webcam's frames come at whatever rate the browser and the server
    manage: a track's life without detections is counted on the clock."""
    for gap_s, same in ((0.8, True), (1.5, False)):
        tracker = FaceTracker(clock=iter(np.arange(0, 10, 1 / fps)).__next__)
        ids = []
        for n in range(int(fps * (1 + gap_s + 1))):  # 1 s seen, the gap, 1 s seen again
            seen = n < fps or n >= fps * (1 + gap_s)
            ids += [t.id for t in tracker.update([_face((100, 100, 160, 160), "with_mask")] if seen else [])]
        assert (len(set(ids)) == 1) == same, (fps, gap_s, sorted(set(ids)))


def test_with_the_detector_on_every_third_frame_the_box_follows_between_detections():
    tracker = FaceTracker(detect_every=3)
    boxes = []
    for n in range(30):
        x = 20 + 6 * n
        faces = [_face((x, 100, x + 60, 160), "without_mask")] if tracker.detect_due else None
        assert (faces is not None) == (n % 3 == 0)
        shown = tracker.update(faces)
        assert len(shown) == 1 and shown[0].id == 1
        boxes.append(shown[0].box[0] - x)
    # once the filter has the speed, the frames between detections stay on the face
    assert max(abs(b) for b in boxes[12:]) <= 6
    with pytest.raises(ValueError, match="detect_every"):
        FaceTracker(detect_every=0)


def test_a_followed_face_is_classified_again_only_when_its_answer_is_old_and_a_new_face_at_once():
    tracker = FaceTracker(classify_every=4)
    asked = []

    def classify(found):
        asked.append([f.box[1] for f in found])
        return [_face(f.box, "without_mask") for f in found]

    for n in range(12):
        found = [Detection((100 + n, 100, 160 + n, 160), 0.9)]
        if n >= 6:  # a second face walks in at the 7th frame
            found.append(Detection((400, 300, 460, 360), 0.8))
        shown = tracker.update(found, classify)
        assert len(shown) == len(found) and all(t.label == "without_mask" for t in shown)
    # frames 1, 5, 9 for the first face; frames 7 and 11 for the second: one batch a frame
    assert asked == [[100], [100], [300], [100], [300]]
    first, second = tracker.tracks.values()
    assert (first.frames, first.classified, second.frames, second.classified) == (12, 3, 6, 2)
    with pytest.raises(ValueError, match="classify_every"):
        FaceTracker(classify_every=0)


def test_one_odd_frame_does_not_flip_a_label_but_a_change_that_lasts_does():
    tracker = FaceTracker()
    shown = []
    for n in range(40):
        label = "without_mask" if n == 10 or n >= 25 else "with_mask"  # one odd frame, then a real change
        (track,) = tracker.update([_face((100, 100, 160, 160), label, p=0.95)])
        shown.append(track.label)
    assert shown[10] == "with_mask" and set(shown[:25]) == {"with_mask"}
    change = shown.index("without_mask")
    assert 25 < change <= 30 and set(shown[change:]) == {"without_mask"}  # within a few frames, then for good
    (person,) = tracker.people()
    assert person.final_label == "with_mask"  # shown so for most of its frames
    assert person.frames == 40 and person.first_frame == 1 and person.last_frame == 40


def test_a_one_frame_false_detection_is_not_counted_as_a_person(tmp_path):
    tracker = FaceTracker()
    for n in range(10):
        faces = [_face((100, 100, 160, 160), "with_mask")]
        if n == 4:
            faces.append(_face((400, 300, 440, 340), "without_mask"))
        tracker.update(faces)
    assert len(tracker.tracks) == 2 and tracker.counts() == {
        "with_mask": 1,
        "without_mask": 0,
        "mask_weared_incorrect": 0,
    }
    tracker.write_csv(tmp_path / "tracks.csv")
    rows = pd.read_csv(tmp_path / "tracks.csv")
    assert list(rows.columns) == TRACKS_HEADER and len(rows) == 1
    assert rows.loc[0, "label"] == "with_mask" and rows.loc[0, "p_with_mask"] == pytest.approx(0.9)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from tests.helpers import small_data

    root = tmp_path_factory.mktemp("clip")
    small_data(root, crops_per_class_per_person=1)
    sample = root / "data" / "raw" / "sample"
    return render_clip(pd.read_csv(sample / "crops.csv"), sample, people=6, walk_frames=40, seed=3)


def test_the_rendered_clip_knows_who_is_where_and_wearing_what(clip):
    truth = clip.truth
    assert truth["person"].nunique() == 6 and sum(clip.people().values()) == 6
    changed = truth.groupby("person")["label"].nunique()
    assert changed.max() == 2 and changed.min() == 1  # some change their mask on the way, some do not
    for row in truth.sample(20, random_state=0).itertuples():  # the face is drawn where the truth says
        patch = clip.frames[row.frame - 1][row.y1 : row.y2, row.x1 : row.x2].astype(float)
        assert patch.std() > 20  # a face, not the smooth background
    assert all(f.shape == (480, 640, 3) for f in clip.frames)


def test_people_counted_per_class_match_the_clips_truth(clip):
    """The tracker on the clip's true boxes, shaken by a few pixels and with
    one frame in eight missed, and classified with noisy probabilities: one id
    per person, and each person counted under the label worn longest."""
    rng = np.random.default_rng(0)
    by_frame = dict(list(clip.truth.groupby("frame")))
    tracker, shown = FaceTracker(), []
    for n in range(1, len(clip.frames) + 1):
        faces = []
        for row in by_frame.get(n, pd.DataFrame()).itertuples():
            if rng.random() < 1 / 8:
                continue
            box = np.array([row.x1, row.y1, row.x2, row.y2]) + rng.integers(-3, 4, 4)
            faces.append(_face(box, row.label, p=rng.uniform(0.5, 0.95)))
        tracks = tracker.update(faces)
        shown.append(([t.as_face() for t in tracks], [t.id for t in tracks]))
    result = score(clip, shown, tracker.counts())
    assert result["id_switches"] == 0 and result["people"] == clip.people()
    assert result["recall"] > 0.8 and result["label_right"] > 0.9
