"""Scene-level evaluation: the whole Predictor (detect, then classify) on
annotated scenes, scored the way detection papers score it.

A prediction matches a ground-truth face when their IoU is at least 0.5;
each face is matched once, best score first (Pascal VOC rules). Faces marked
``difficult`` are neither required nor held against a detection that finds
them. AP is the area under the all-point interpolated precision-recall curve
(VOC 2010 onwards); mAP is its mean over the three classes.

Each found face is a candidate for every class, with the confidence
detector score x the class's probability, and counts as right for the class
of the face it matched: a detector that scores every box for every class is
scored so (the VOC devkit takes one ranked list per class; YOLOv5's validation
keeps every class of a box above 0.001, and the published mAP figures on the
Kaggle face-mask set were measured that way). Scoring each face under its
top label only would cap a rare class's recall at the faces where it wins the
argmax, whatever its probability says: on the 596 Kaggle photos, mAP@0.5 of
the default model 0.595 that way against 0.659 (docs/experiment-log.md).
The labels a user sees stay the top class; the rows keep it beside each
class's probability (``p_<label>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from maskdet import LABELS
from maskdet.io.voc import VocObject, read_voc
from maskdet.predict.detectors import UltraLightDetector
from maskdet.predict.predictor import DETECTORS, make_detector

MASKED = ("with_mask", "mask_weared_incorrect")


@dataclass(frozen=True)
class Scene:
    image: Path
    objects: list[VocObject]


def read_scenes(folder: Path) -> list[Scene]:
    """``folder/annotations/*.xml`` with their images in ``folder/images``."""
    scenes = []
    for xml in sorted((folder / "annotations").glob("*.xml")):
        ann = read_voc(xml, LABELS)
        image = folder / "images" / ann.filename
        if image.is_file():
            scenes.append(Scene(image, ann.objects))
    return scenes


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), corners x1, y1, x2, y2."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match(truth: list[VocObject], boxes: list, scores: list[float], iou: float = 0.5) -> tuple[list, list]:
    """Greedy VOC matching. Returns, per prediction, the index of the face it
    matched (or None), and per face whether it was found."""
    order = np.argsort(-np.asarray(scores, float), kind="stable")
    overlaps = iou_matrix(np.array(boxes, float).reshape(-1, 4), np.array([t.box for t in truth], float))
    taken = [False] * len(truth)
    matched: list = [None] * len(boxes)
    for i in order:
        if not len(truth):
            break
        j = int(np.argmax(overlaps[i]))
        if overlaps[i, j] >= iou and not taken[j]:
            taken[j] = True
            matched[i] = j
    return matched, taken


def average_precision(scores: np.ndarray, correct: np.ndarray, positives: int) -> float:
    """All-point interpolated AP; NaN when there is nothing to find."""
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(correct[order])
    fp = np.cumsum(~correct[order])
    recall = np.concatenate([[0.0], tp / positives, [1.0]])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def detection_table(scenes: list[Scene], detector) -> pd.DataFrame:
    """One row per annotated face: its label, whether it is difficult, and
    whether ``detector`` found it at IoU 0.5. For comparing detectors alone."""
    from maskdet.io.images import load_rgb

    rows = []
    for scene in scenes:
        found = detector(load_rgb(scene.image))
        _, taken = match(scene.objects, [d.box for d in found], [d.score for d in found])
        rows += [
            {"scene": scene.image.name, "label": t.label, "difficult": t.difficult, "found": hit}
            for t, hit in zip(scene.objects, taken)
        ]
    return pd.DataFrame(rows, columns=["scene", "label", "difficult", "found"])


def detection_recall(table: pd.DataFrame) -> dict[str, float]:
    """Recall on all faces, on masked faces (worn right or wrong) and on bare faces."""
    t = table[~table["difficult"]]
    masked = t["label"].isin(MASKED)
    mean = lambda s: float(s.mean()) if len(s) else float("nan")  # noqa: E731
    return {
        "recall": mean(t["found"]),
        "recall_masked": mean(t.loc[masked, "found"]),
        "recall_unmasked": mean(t.loc[~masked, "found"]),
        "faces": int(len(t)),
        "masked_faces": int(masked.sum()),
    }


# Face widths (pixels) at which recall is reported: the Kaggle set's median face
# is 23 px wide and 4 in 10 are under 20; COCO's small / medium / large split
# at 32 and 96 px (of area's square root) would put most of them in one bin.
SIZE_BINS = (0, 12, 16, 24, 32, 64, 96, float("inf"))


def size_bin(width: float) -> str:
    """The SIZE_BINS bin of a face ``width`` px wide: "0-12", "12-16", ..., "96-up"
    (names that MLflow takes as parts of metric names)."""
    k = int(np.searchsorted(SIZE_BINS, width, side="right")) - 1
    low, high = SIZE_BINS[k], SIZE_BINS[k + 1]
    return f"{low:g}-up" if high == float("inf") else f"{low:g}-{high:g}"


def scene_metrics(
    scenes: list[Scene], predictions: list, iou: float = 0.5, shown_from: float = 0.0
) -> tuple[dict[str, float], pd.DataFrame]:
    """Detection precision / recall and AP per class (``ap50_<label>``, ``map50``
    at IoU 0.5; ``ap30_...`` at 0.3) at ``iou`` from the
    Predictor's answers (one ``Prediction`` per scene, in order), with recall
    by face width (``recall_<bin>``, SIZE_BINS). Returns the scalars and one
    row per prediction, its box and the face it matched (for the figures and
    the predictions file).

    ``shown_from``: the detector score from which the Predictor shows a face.
    The answers may go lower (``scene_answers``): AP ranks every candidate, as
    detection benchmarks score it, while recall, precision and the recall by
    width count the faces shown (``shown`` in the rows). Matching goes best
    score first, so a candidate below ``shown_from`` never takes a face from
    one above it: the shown rows match as they would alone."""
    rows, faces = [], []
    for scene, pred in zip(scenes, predictions):
        boxes, scores = [f.box for f in pred.faces], [f.score for f in pred.faces]
        matched, _ = match(scene.objects, boxes, scores, iou)
        found = {j for j, score in zip(matched, scores) if j is not None and score >= shown_from}
        faces += [
            {"label": t.label, "difficult": t.difficult, "found": j in found, "size": size_bin(t.box[2] - t.box[0])}
            for j, t in enumerate(scene.objects)
        ]
        for face, j in zip(pred.faces, matched):
            truth = scene.objects[j] if j is not None else None
            if truth is not None and truth.difficult:
                continue  # found a face nobody has to find: neither right nor wrong
            rows.append(
                {
                    "scene": scene.image.name,
                    **dict(zip(("x1", "y1", "x2", "y2"), face.box)),
                    "label": face.label,
                    "score": face.score,
                    "confidence": face.score * face.probs[face.label],
                    **{f"p_{label}": face.probs[label] for label in LABELS},
                    "true_label": truth.label if truth else None,
                    "true_box": " ".join(str(v) for v in truth.box) if truth else None,
                    "shown": face.score >= shown_from,
                }
            )
    columns = ["scene", "x1", "y1", "x2", "y2", "label", "score", "confidence", *(f"p_{k}" for k in LABELS)]
    columns += ["true_label", "true_box", "shown"]
    preds = pd.DataFrame(rows, columns=columns)
    faces = pd.DataFrame(faces, columns=["label", "difficult", "found", "size"])
    out = detection_recall(faces)
    kept = faces[~faces["difficult"]]
    for k in range(len(SIZE_BINS) - 1):
        name = size_bin(SIZE_BINS[k])
        mine = kept[kept["size"] == name]
        if len(mine):  # a bin without faces has no recall
            out[f"recall_{name}"] = float(mine["found"].mean())
            out[f"faces_{name}"] = int(len(mine))
    shown = shown_rows(preds)
    out["precision"] = float(shown["true_label"].notna().mean()) if len(shown) else float("nan")
    aps, at = [], f"{round(iou * 100)}"  # ap50_with_mask, map50 at IoU 0.5; ap30_..., map30 at 0.3
    for label in LABELS:
        positives = int(((faces["label"] == label) & ~faces["difficult"]).sum())
        ap = average_precision(*class_candidates(preds, label), positives)
        out[f"ap{at}_{label}"] = ap
        aps.append(ap)
    finite = [a for a in aps if np.isfinite(a)]
    out[f"map{at}"] = float(np.mean(finite)) if finite else float("nan")
    return out, preds


def scene_metrics_both_ious(
    scenes: list[Scene], predictions: list, shown_from: float = 0.0
) -> tuple[dict[str, float], pd.DataFrame]:
    """``scene_metrics`` at IoU 0.5, and beside them recall, precision and AP at
    IoU 0.3 (``recall_iou30``, ``precision_iou30``, ``ap30_...``, ``map30``): for
    faces of 15 px a box a few pixels off the annotator's fails 0.5 and still
    found the face. The rows are those of IoU 0.5."""
    scores, rows = scene_metrics(scenes, predictions, shown_from=shown_from)
    loose, _ = scene_metrics(scenes, predictions, iou=0.3, shown_from=shown_from)
    scores.update({k: v for k, v in loose.items() if k.startswith(("ap30_", "map30"))})
    scores.update({f"{k}_iou30": loose[k] for k in ("recall", "precision")})
    return scores, rows


def candidate_predictor(predictor, candidates_from: float) -> tuple:
    """``predictor`` answering with every face its detector scores from
    ``candidates_from`` (never above the Predictor's own threshold), and that
    threshold, ``scene_metrics``' ``shown_from``. Detection benchmarks rank
    candidates below what a user is shown (YOLOv5 validates from 0.001 and
    predicts from 0.25); scored on the shown faces alone, the answers of a
    user's street photos read about 0.015 of mAP lower (docs, Real scenes). One
    difference from the shown answers alone: a photo with a candidate under the
    threshold and no face above it is not looked at again as a close-up."""
    shown_from = float(predictor.detector.score_threshold)
    return predictor.with_settings(score_threshold=min(candidates_from, shown_from)), shown_from


def scene_answers(predictor, scenes: list[Scene], candidates_from: float, progress: bool = False) -> tuple[list, float]:
    """The answers of ``candidate_predictor`` on ``scenes``, and the threshold from which faces are shown."""
    from tqdm import tqdm

    wide, shown_from = candidate_predictor(predictor, candidates_from)
    answers = [wide.predict(s.image) for s in tqdm(scenes, desc="scenes", unit="photo", disable=not progress)]
    return answers, shown_from


def shown_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``scene_metrics`` that the Predictor shows. Answers written
    before the evaluation ranked candidates under its threshold have no
    ``shown`` column: every one of them was shown."""
    return rows[rows["shown"].astype(bool)] if "shown" in rows else rows


def class_candidates(preds: pd.DataFrame, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Every found face (``scene_metrics``' rows) as a candidate for ``label``: its
    confidence (detector score x the class's probability) and whether it matched a
    face of that class."""
    return (preds["score"] * preds[f"p_{label}"]).to_numpy(float), (preds["true_label"] == label).to_numpy()


def precision_recall_curve(preds: pd.DataFrame, label: str, positives: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision of the candidates for ``label``, most confident first (``scene_metrics``' rows)."""
    confidence, correct = class_candidates(preds, label)
    correct = correct[np.argsort(-confidence, kind="stable")]
    tp = np.cumsum(correct)
    return tp / max(positives, 1), tp / np.arange(1, len(correct) + 1)


def compared_detectors(predict_params) -> dict:
    """The detectors the evaluation compares on the same faces: each at its
    configured input, and Ultra-Light also at its native 640x480 when that differs."""
    sizes = predict_params.input_sizes()
    found = {name: make_detector(name, input_size=sizes.get(name)) for name in DETECTORS}
    if sizes["ultralight"] != UltraLightDetector.native_size:
        found["ultralight_640x480"] = make_detector("ultralight")
    return found
