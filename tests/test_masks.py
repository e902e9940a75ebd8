"""Masks must sit where real masks sit: the placement decides what stays visible."""

import numpy as np
import pytest

from maskdet.data import landmarks as lm
from maskdet.data.landmarks import FaceMeshModel
from maskdet.data.masks import STYLES, random_spec, render_mask
from maskdet.predict.detectors import UltraLightDetector


@pytest.fixture(scope="module")
def face(face_rgb):
    det = max(UltraLightDetector()(face_rgb), key=lambda d: d.width)
    return FaceMeshModel()(face_rgb, det.box)


def _changed(before, after, mesh, index, radius=3):
    x, y = np.round(mesh.xy(index)).astype(int)
    patch = np.s_[y - radius : y + radius + 1, x - radius : x + radius + 1]
    return np.abs(after[patch].astype(int) - before[patch].astype(int)).mean() > 12


def test_face_mesh_confirms_a_real_face(face):
    assert face.score > 0.9
    assert (
        face.xy(lm.NOSE_BRIDGE_TOP)[1] < face.xy(lm.NOSE_TIP)[1] < face.xy(lm.LOWER_LIP_BOTTOM)[1] < face.xy(lm.CHIN)[1]
    )


@pytest.mark.parametrize("height, drop", [(None, None), (0.1, 0.25), (0.55, 0.75), (0.1, 0.75)])  # drawn; extremes
@pytest.mark.parametrize("style", STYLES)
def test_worn_correctly_covers_nose_mouth_and_chin_not_eyes(face_rgb, face, style, height, drop):
    from dataclasses import replace

    rng = np.random.default_rng(0)
    spec = random_spec(rng, "correct", style)
    assert 0.1 <= spec.height <= 0.55 and 0.25 <= spec.drop <= 0.75
    out = render_mask(face_rgb, face, spec if height is None else replace(spec, height=height, drop=drop), rng)
    for covered in (lm.NOSE_TIP, lm.SUBNASALE, lm.UPPER_LIP_TOP, lm.LOWER_LIP_BOTTOM):
        assert _changed(face_rgb, out, face, covered), covered
    for free in (lm.RIGHT_EYE_OUTER, lm.LEFT_EYE_OUTER, lm.NOSE_BRIDGE_TOP):
        assert not _changed(face_rgb, out, face, free), free


def test_nose_out_leaves_the_nose_and_covers_the_mouth(face_rgb, face):
    rng = np.random.default_rng(1)
    out = render_mask(face_rgb, face, random_spec(rng, "nose_out", "surgical"), rng)
    assert not _changed(face_rgb, out, face, lm.NOSE_TIP)
    assert _changed(face_rgb, out, face, lm.LOWER_LIP_BOTTOM)


@pytest.mark.parametrize("tilt", [-20.0, 20.0])
def test_a_mask_on_one_loop_hangs_lower_on_the_loose_side(face_rgb, face, tilt):
    from dataclasses import replace

    rng = np.random.default_rng(4)
    spec = random_spec(rng, "one_loop", "surgical")
    assert 10 <= abs(spec.tilt) <= 25 and not spec.worn_correctly
    out = render_mask(face_rgb, face, replace(spec, tilt=tilt), rng)
    changed = np.abs(out.astype(int) - face_rgb.astype(int)).sum(axis=2) > 36
    held, loose = (lm.RIGHT_CHEEK_SIDE, lm.LEFT_CHEEK_SIDE) if tilt > 0 else (lm.LEFT_CHEEK_SIDE, lm.RIGHT_CHEEK_SIDE)

    def top_near(index):  # the highest changed row in a band of columns towards that cheek
        x = face.xy(index)[0] * 0.6 + face.xy(lm.NOSE_TIP)[0] * 0.4
        rows = np.nonzero(changed[:, int(x) - 3 : int(x) + 4].any(axis=1))[0]
        return rows.min()

    width = abs(face.xy(lm.LEFT_CHEEK_SIDE)[0] - face.xy(lm.RIGHT_CHEEK_SIDE)[0])
    assert top_near(loose) > top_near(held) + 0.1 * width
    assert not _changed(face_rgb, out, face, lm.NOSE_BRIDGE_TOP)


def test_chin_leaves_nose_and_mouth(face_rgb, face):
    rng = np.random.default_rng(2)
    out = render_mask(face_rgb, face, random_spec(rng, "chin", "cloth"), rng)
    for free in (lm.NOSE_TIP, lm.UPPER_LIP_TOP):
        assert not _changed(face_rgb, out, face, free), free
    x, y = np.round(face.xy(lm.CHIN)).astype(int)
    assert _changed(face_rgb, out, face, lm.CHIN) or np.any(out[y - 8 : y, x] != face_rgb[y - 8 : y, x])


def test_rendering_is_deterministic_for_a_seed(face_rgb, face):
    a = render_mask(face_rgb, face, random_spec(np.random.default_rng(5), "correct"), np.random.default_rng(5))
    b = render_mask(face_rgb, face, random_spec(np.random.default_rng(5), "correct"), np.random.default_rng(5))
    assert np.array_equal(a, b) and not np.array_equal(a, face_rgb)


def test_only_real_faces_are_kept(group_rgb):
    """The default-data builder keeps a detection only when the face mesh agrees.
    A patch of wall scores near zero. The crown badge on a shirt in sample1.jpg
    fools the mesh (its presence score is high), so it must not be detected at all."""
    from maskdet.data.sample import find_faces

    mesh = FaceMeshModel()
    assert mesh(group_rgb, (40, 40, 240, 240)).score < 0.01  # wall
    badge = (1460, 570, 1600, 710)
    detections = UltraLightDetector(score_threshold=0.3)(group_rgb)
    assert not any(
        d.box[0] < badge[2] and badge[0] < d.box[2] and d.box[1] < badge[3] and badge[1] < d.box[3] for d in detections
    )
    faces = find_faces(group_rgb, UltraLightDetector(), mesh, face_score=0.5, min_face=80)
    assert len(faces) == 3 and all(m.score > 0.9 for _, m in faces)
