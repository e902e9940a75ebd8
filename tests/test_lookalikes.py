"""Things on a bare face that are not masks land where they belong on the face."""

import numpy as np
import pytest

from maskdet.data import landmarks as lm
from maskdet.data.landmarks import FaceMeshModel
from maskdet.data.lookalikes import EYEWEAR, HAIR, KINDS, draw_lookalike, random_lookalike
from maskdet.predict.detectors import UltraLightDetector


@pytest.fixture(scope="module")
def face(face_rgb):
    det = max(UltraLightDetector()(face_rgb), key=lambda d: d.width)
    return FaceMeshModel()(face_rgb, det.box)


def _changed_at(before, after, xy, radius=3):
    x, y = np.round(xy).astype(int)
    patch = np.s_[y - radius : y + radius + 1, x - radius : x + radius + 1]
    return np.abs(after[patch].astype(int) - before[patch].astype(int)).mean() > 10


def _eye_centre(face, outer, inner):
    return (face.xy(outer) + face.xy(inner)) / 2


def _above_the_lip(face):
    return face.xy(lm.SUBNASALE) * 0.4 + face.xy(lm.UPPER_LIP_TOP) * 0.6


def _below_the_lip(face):
    return face.xy(lm.LOWER_LIP_BOTTOM) * 0.4 + face.xy(lm.CHIN) * 0.6


@pytest.mark.parametrize(
    "kind, covered, free",
    [
        ("beard", [_below_the_lip, _above_the_lip], ["eye", "nose"]),
        ("goatee", [_below_the_lip], ["eye", "nose"]),
        ("moustache", [_above_the_lip], ["eye", "nose", _below_the_lip]),
        ("sunglasses", ["eye"], ["nose", _above_the_lip, _below_the_lip]),
    ],
)
def test_each_lookalike_covers_its_part_of_the_face_and_no_other(face_rgb, face, kind, covered, free):
    out = draw_lookalike(face_rgb, face, kind, np.random.default_rng(0))
    where = {"eye": lambda f: _eye_centre(f, lm.RIGHT_EYE_OUTER, 133), "nose": lambda f: f.xy(lm.NOSE_TIP)}
    for part in covered:
        assert _changed_at(face_rgb, out, (where.get(part) or part)(face)), (kind, part)
    for part in free:
        assert not _changed_at(face_rgb, out, (where.get(part) or part)(face)), (kind, part)


def test_glasses_draw_rims_and_leave_the_eyes_seen(face_rgb, face):
    out = draw_lookalike(face_rgb, face, "glasses", np.random.default_rng(0))
    assert not _changed_at(face_rgb, out, _eye_centre(face, lm.RIGHT_EYE_OUTER, 133), radius=1)
    assert (np.abs(out.astype(int) - face_rgb).sum(axis=2) > 60).sum() > 200  # the rims
    assert not _changed_at(face_rgb, out, face.xy(lm.CHIN))


def test_facial_hair_only_on_bare_faces_and_eyewear_on_any():
    rng = np.random.default_rng(0)
    masked = {random_lookalike(rng, bare=False, hair_share=0.35, eyewear_share=0.15) for _ in range(400)}
    bare = [random_lookalike(rng, bare=True, hair_share=0.35, eyewear_share=0.15) for _ in range(2000)]
    assert masked == {None, *EYEWEAR}
    assert set(bare) == {None, *KINDS} and 0.3 < sum(k in HAIR for k in bare) / len(bare) < 0.4
    state = rng.bit_generator.state  # shares of 0 draw nothing: the rest of the data stays as it was
    assert random_lookalike(rng, bare=True, hair_share=0.0, eyewear_share=0.0) is None
    assert rng.bit_generator.state == state
    with pytest.raises(ValueError, match="kind must be one of"):
        draw_lookalike(np.zeros((8, 8, 3), np.uint8), None, "scarf", rng)
