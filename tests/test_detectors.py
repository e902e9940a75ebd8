"""Both face detectors on real photos: same faces, boxes inside the image."""

import numpy as np

from maskdet.detectors import BlazeFaceDetector, UltraLightDetector
from maskdet.scenes import iou_matrix


def test_blazeface_and_ultralight_find_the_same_three_faces(group_rgb):
    ultra, blaze = UltraLightDetector()(group_rgb), BlazeFaceDetector()(group_rgb)
    assert len(ultra) == len(blaze) == 3
    overlap = iou_matrix([d.box for d in blaze], [d.box for d in ultra])
    assert (overlap.max(axis=1) > 0.4).all()  # each BlazeFace box sits on an Ultra-Light box


def test_letterboxing_keeps_boxes_right_on_a_portrait_frame(group_rgb):
    """The image turned on its side: BlazeFace letterboxes, boxes come back in its pixels."""
    turned = np.ascontiguousarray(np.rot90(group_rgb))
    found = BlazeFaceDetector()(turned)
    h, w = turned.shape[:2]
    assert len(found) >= 2
    for d in found:
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and 0.6 < d.width / d.height < 1.6


def test_no_faces_in_a_blank_frame():
    blank = np.full((480, 640, 3), 128, np.uint8)
    assert UltraLightDetector()(blank) == [] and BlazeFaceDetector()(blank) == []
