"""The box correction of a model trained on a user's VOC scenes: the
Predictor's detector run on the training photos as it runs on any photo, its
boxes paired with the annotators' (IoU 0.3 and up, VOC matching), and the
correction of ``maskdet.predict.boxfit`` fitted on the pairs.
"""

from __future__ import annotations

from maskdet.io.images import load_rgb
from maskdet.params import PredictParams
from maskdet.predict.boxfit import BoxCorrection, fit_box_correction
from maskdet.predict.predictor import configured_detector, detect_faces
from maskdet.study.scenes import Scene, match

PAIR_IOU = 0.3  # a detection this close to a hand-drawn box found that face, whatever its shape


def detector_pairs(settings: PredictParams, scenes: list[Scene], progress: bool = False) -> tuple[list, list]:
    """(detection boxes, hand-drawn boxes) of every face the detector found, in the same order."""
    from tqdm import tqdm

    detector = configured_detector(settings)
    found_boxes, truth_boxes = [], []
    for scene in tqdm(scenes, desc="box correction", unit="photo", disable=not progress):
        found = detect_faces(detector, load_rgb(scene.image), settings, photo=True)
        matched, _ = match(scene.objects, [d.box for d in found], [d.score for d in found], PAIR_IOU)
        for d, j in zip(found, matched):
            if j is not None and not scene.objects[j].difficult:
                found_boxes.append(d.box)
                truth_boxes.append(scene.objects[j].box)
    return found_boxes, truth_boxes


def fit_on_scenes(settings: PredictParams, scenes: list[Scene], progress: bool = False) -> BoxCorrection | None:
    """The correction for ``settings.detector`` from annotated training scenes;
    None when too few faces were found to fit one."""
    return fit_box_correction(settings.detector, *detector_pairs(settings, scenes, progress))
