"""Intervals of the scene evaluation's mAP and AP per class: the test photos
resampled whole (the bootstrap), apart from ``scenes`` so that the training
stage, which reads scenes for the box correction, does not depend on it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from maskdet import LABELS
from maskdet.study.scenes import Scene, average_precision, class_candidates


def resampled_aps(
    scenes: list[Scene], runs: list[pd.DataFrame], groups: list[str], draws: int, seed: int
) -> np.ndarray:
    """AP@0.5 of each class for each run (``scene_metrics``' rows) on ``draws``
    resamples of the photo ``groups``, the same resamples for every run:
    an array (runs, draws + 1, classes) whose first draw is the photos as
    they are. A class absent from a resample has no AP there (NaN). Two runs
    on the same resamples compare photo by photo (benchmarks/compare_folds.py)."""
    index = {s.image.name: i for i, s in enumerate(scenes)}
    names, group_of = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    positives = np.array([[sum(o.label == k and not o.difficult for o in s.objects) for k in LABELS] for s in scenes])
    owners = [rows["scene"].map(index).to_numpy(int) for rows in runs]
    candidates = [[class_candidates(rows, label) for label in LABELS] for rows in runs]
    rng = np.random.default_rng(seed)
    out = np.full((len(runs), draws + 1, len(LABELS)), np.nan)
    for d in range(draws + 1):
        # draw 0: every group once; then a group drawn twice counts twice: its scenes' rows and faces repeated
        drawn = (
            np.ones(len(names), int)
            if d == 0
            else np.bincount(rng.integers(len(names), size=len(names)), minlength=len(names))
        )
        counts = drawn[group_of]
        for r, owner in enumerate(owners):
            repeat = counts[owner]
            for k, (confidence, correct) in enumerate(candidates[r]):
                found = int(counts @ positives[:, k])
                out[r, d, k] = average_precision(np.repeat(confidence, repeat), np.repeat(correct, repeat), found)
    return out


def scene_intervals(
    scenes: list[Scene],
    rows: pd.DataFrame,
    groups: list[str] | None = None,
    draws: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Percentile intervals of mAP@0.5 and each class's AP@0.5, resampling whole
    photo groups with replacement (``map50_ci95_low`` / ``_high``,
    ``ap50_<label>_ci95_...``). ``rows``: ``scene_metrics``' rows at IoU 0.5;
    ``groups``: each scene's group (``scene_groups``; by default each scene its
    own). A photo's faces are not independent trials (one crowd, one light, one
    annotator), nor are near-duplicate photos or renders of one photo; and on a
    set with a rare class the AP rests on a few faces: 13 incorrectly worn masks
    in 90 test photos move the AP by about 0.08 each. The interval says how far
    the photos drawn alone move the figure; another training moves it as well.
    Fewer than 2 groups: no interval (an empty dict)."""
    groups = groups if groups is not None else [s.image.name for s in scenes]
    if len(set(groups)) < 2:
        return {}
    samples = resampled_aps(scenes, [rows], groups, draws, seed)[0, 1:]
    tail = (1 - level) / 2 * 100
    out: dict[str, float] = {}
    named = {f"ap50_{label}": samples[:, k] for k, label in enumerate(LABELS)}
    finite = np.isfinite(samples)  # a resample without a class has no AP for it; mAP is over the others
    with np.errstate(invalid="ignore"):
        named["map50"] = np.where(finite, samples, 0).sum(axis=1) / finite.sum(axis=1)
    for name, values in named.items():
        values = values[np.isfinite(values)]
        if len(values):
            out[f"{name}_ci95_low"] = float(np.percentile(values, tail))
            out[f"{name}_ci95_high"] = float(np.percentile(values, 100 - tail))
    return out


def scene_groups(scenes: list[Scene], manifest: pd.DataFrame) -> list[str]:
    """Each scene's group in the split (``manifest``'s ``group``): that of the
    first face it must find, through the face's person (the built-in set's
    renders) or its photo (a VOC set, where near duplicates share a group); the
    scene's own name where the manifest knows neither."""
    by_person = dict(zip(manifest["person"].fillna(""), manifest["group"]))
    by_photo = dict(zip(manifest["photo"].fillna("").astype(str), manifest["group"]))
    by_person.pop("", None)  # crops without a person (VOC) or a photo name
    by_photo.pop("", None)
    found = []
    for scene in scenes:
        faces = [o for o in scene.objects if not o.difficult]
        face = faces[0] if faces else None
        group = (by_person.get(face.person) if face and face.person else None) or by_photo.get(scene.image.stem)
        found.append(group or scene.image.name)
    return found
