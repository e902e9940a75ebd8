"""Both face detectors on real photos: same faces, boxes inside the image."""

import numpy as np
import pytest

from maskdet.predict.detectors import BlazeFaceDetector, UltraLightDetector
from maskdet.study.scenes import iou_matrix


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


def _original_graph_detections(rgb, threshold):
    """Ultra-Light as published: its own graph decodes the 640x480 priors."""
    import cv2

    from maskdet.io import assets
    from maskdet.predict.detectors import _clipped

    net = cv2.dnn.readNetFromONNX(str(assets.extract(assets.ULTRALIGHT_ONNX)))
    net.setInput(cv2.dnn.blobFromImage(cv2.resize(rgb, (640, 480)), 1 / 128, (640, 480), (127, 127, 127)))
    boxes, scores = (out[0] for out in net.forward(["boxes", "scores"]))
    h, w = rgb.shape[:2]
    keep = scores[:, 1] >= threshold
    return _clipped(boxes[keep] * np.array([w, h, w, h]), scores[keep, 1], 0.3, w, h)


def test_ultralight_cut_graph_with_numpy_priors_equals_the_published_graph(group_rgb, face_rgb):
    # Small faces (the group) and one large face (the portrait: the coarsest feature map).
    for rgb, least in ((group_rgb, 3), (face_rgb, 1)):
        for threshold in (0.7, 0.2):  # 0.2: many more candidate boxes go through the decoding
            ours = UltraLightDetector(score_threshold=threshold)(rgb)
            original = _original_graph_detections(rgb, threshold)
            assert len(ours) == len(original) >= least
            for a, b in zip(ours, original):
                assert np.abs(np.subtract(a.box, b.box)).max() <= 1 and abs(a.score - b.score) < 1e-5


@pytest.mark.parametrize("size", [(400, 300), (320, 240), (333, 250)])
def test_ultralight_at_smaller_inputs_finds_the_same_faces(group_rgb, size):
    native = UltraLightDetector()(group_rgb)
    small = UltraLightDetector(input_size=size)
    found = small(group_rgb)
    assert len(found) == len(native) == 3
    assert (iou_matrix([d.box for d in found], [d.box for d in native]).max(axis=1) > 0.6).all()
    assert len(small.sized(small.input_size)[1]) < 17640  # fewer anchors: the speed comes from there


def test_ultralight_priors_equal_the_published_graphs_constants():
    import onnx
    from onnx import numpy_helper

    from maskdet.io import assets

    graph = onnx.load(str(assets.extract(assets.ULTRALIGHT_ONNX))).graph
    constants = [numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"]
    anchors = [c[0] for c in constants if c.shape == (1, 17640, 2)]  # prior centres and prior sides
    ours = UltraLightDetector.make_priors(640, 480)
    assert any(np.array_equal(ours[:, :2], c) for c in anchors)
    assert any(np.array_equal(ours[:, 2:], c) for c in anchors)
    priors = UltraLightDetector.make_priors(400, 300)
    assert len(priors) < len(ours) and priors.min() >= 0 and priors.max() <= 1


def test_centerface_finds_the_group_at_every_input_size_in_the_image_pixels(group_rgb):
    from maskdet.predict.detectors import CenterFaceDetector

    h, w = group_rgb.shape[:2]
    native = CenterFaceDetector(input_size=(640, 480))(group_rgb)
    assert len(native) == 3
    for size in ((416, 320), (320, 240), (333, 250)):  # 333x250: padded up to multiples of 32
        found = CenterFaceDetector(input_size=size)(group_rgb)
        assert len(found) == 3, size
        assert (iou_matrix([d.box for d in found], [d.box for d in native]).max(axis=1) > 0.6).all()
        for d in found:
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and 0.3 <= d.score <= 1


def test_centerface_keeps_the_aspect_ratio_of_a_portrait_frame(group_rgb):
    from maskdet.predict.detectors import CenterFaceDetector

    turned = np.ascontiguousarray(np.rot90(group_rgb))
    found = CenterFaceDetector()(turned)
    assert len(found) == 3
    assert all(0.6 < d.width / d.height < 1.6 for d in found)  # a stretched input would squash the boxes


def test_centerface_threshold_and_blank_frame():
    from maskdet.predict.detectors import CenterFaceDetector

    blank = np.full((480, 640, 3), 128, np.uint8)
    assert CenterFaceDetector()(blank) == []
    assert CenterFaceDetector().score_threshold == 0.3


def test_a_face_filling_the_picture_is_found_once_zoomed_out(face_rgb):
    """A tight crop inside the face: too large for the detector as it is,
    found when centred on a frame twice its size, its box in the crop's pixels."""
    from maskdet.predict.detectors import CenterFaceDetector, detect_zoomed_out

    detector = CenterFaceDetector()
    x1, y1, x2, y2 = detector(face_rgb)[0].box
    dx, dy = (x2 - x1) // 4, (y2 - y1) // 4  # the middle half of the face: eyes, nose, mouth
    crop = np.ascontiguousarray(face_rgb[y1 + dy : y2 - dy, x1 + dx : x2 - dx])
    assert detector(crop) == []
    found = detect_zoomed_out(detector, crop)
    assert len(found) == 1
    h, w = crop.shape[:2]
    bx1, by1, bx2, by2 = found[0].box
    assert 0 <= bx1 < bx2 <= w and 0 <= by1 < by2 <= h
    assert found[0].width * found[0].height > 0.6 * w * h  # the face is most of the crop


def test_ultralight_run_at_one_size_then_another_finds_what_a_fresh_one_finds(group_rgb, face_rgb):
    """Photos come in many sizes: a cv2.dnn network reshaped from one input size
    to another lost the portrait's face, so each size gets its own network."""
    from maskdet.predict.detectors import photo_input

    sizes = [photo_input(rgb.shape[1], rgb.shape[0], 2.0, 2_000_000) for rgb in (group_rgb, face_rgb)]
    shared = UltraLightDetector()
    shared(group_rgb, sizes[0])
    assert shared(face_rgb, sizes[1]) == UltraLightDetector()(face_rgb, sizes[1]) != []
