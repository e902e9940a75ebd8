"""Two cross-validated runs of "Your own data" compared photo by photo.

    python -m benchmarks.compare_folds A B [--voc FOLDER] [--out FILE]

A and B are folders kept by `python -m benchmarks.own_data_folds --keep`: the
same photos, each tested once by a model that never saw it, under two
settings (B run with ``--set``, and with ``--folds-from A/project/data/splits``
where the setting changes the crops). B may also be the answers of A's
models with a setting of prediction changed (benchmarks/rescore_folds.py).
The pooled mAP@0.5 of one run has a 95 % interval about 0.10 wide on 596 Kaggle street photos, wider than most
settings move it; but the two runs answer the same photos, so most of that
spread is shared. Here the photos (whole photo groups, as the study splits
them) are drawn with replacement and both runs scored on each draw: the
interval of B's gain over A says whether the setting, not the photos drawn,
moved the figure. The interval resamples the photos, not the training: the
committed settings trained again with another ``train.seed`` moved the pooled
mAP by -0.017 (-0.043 to +0.011) on those photos, so a setting of training
that moves it by less has not been told from a retraining.

Printed, and written to ``--out`` as JSON: mAP@0.5 and AP@0.5 per class of
each run with B - A and its interval, detection recall and precision at IoU
0.5 with the number of answers (what a setting of the detector trades), and
how many of the faces of each class each run found and called right.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.own_data_folds import detection_counts
from benchmarks.street import add_voc_argument, voc_folder
from maskdet import LABELS
from maskdet.study.scene_intervals import resampled_aps


def pooled_answers(run: Path, folds: int) -> pd.DataFrame:
    """Every fold's scene answers of a kept run (``fold-<k>/scene_predictions.csv``
    for k = 1 to ``folds``)."""
    files = [run / f"fold-{k}" / "scene_predictions.csv" for k in range(1, folds + 1)]
    missing = [f.parent.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{run}: no scene answers of {', '.join(missing)} (of {folds} folds); give a folder kept by "
            "`python -m benchmarks.own_data_folds --keep FOLDER` once it has finished"
        )
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def tested_photos(run: Path) -> tuple[set[str], int]:
    """The photos (file stems) that a kept run's fold files test, and how many folds there are."""
    files = sorted((run / "project" / "data" / "splits").glob("fold-*-of-*.csv"))
    if not files:
        raise FileNotFoundError(
            f"{run}: no project/data/splits/fold-<i>-of-<k>.csv; the first run (A) is a folder kept by "
            "`python -m benchmarks.own_data_folds --keep FOLDER`"
        )
    return {str(p) for f in files for p in pd.read_csv(f, dtype=str, keep_default_na=False)["photo"]}, len(files)


def paired_differences(
    scenes: list,
    a: pd.DataFrame,
    b: pd.DataFrame,
    groups: list[str] | None = None,
    draws: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """mAP@0.5 and AP@0.5 per class of runs ``a`` and ``b`` on ``scenes``
    (``scene_metrics``' rows at IoU 0.5), B - A, and B - A's percentile
    interval over resamples of the photo ``groups`` (by default each scene its
    own), both runs scored on the same resamples."""
    unknown = sorted(set(a["scene"]).union(b["scene"]) - {s.image.name for s in scenes})
    if unknown:
        raise ValueError(f"answers for photos the set does not hold: {', '.join(unknown[:5])}")
    groups = groups if groups is not None else [s.image.name for s in scenes]
    aps = resampled_aps(scenes, [a, b], groups, draws, seed)
    finite = np.isfinite(aps)
    with np.errstate(invalid="ignore"):
        maps = np.where(finite, aps, 0).sum(axis=2) / finite.sum(axis=2)
    named = {"map50": maps, **{f"ap50_{label}": aps[:, :, k] for k, label in enumerate(LABELS)}}
    tail = (1 - level) / 2 * 100
    out = {}
    for name, values in named.items():
        gain = values[1, 1:] - values[0, 1:]
        gain = gain[np.isfinite(gain)]
        out[name] = {
            "a": float(values[0, 0]),
            "b": float(values[1, 0]),
            "b_minus_a": float(values[1, 0] - values[0, 0]),
            "ci95_low": float(np.percentile(gain, tail)) if len(gain) else float("nan"),
            "ci95_high": float(np.percentile(gain, 100 - tail)) if len(gain) else float("nan"),
        }
    return out


def called_right(scenes: list, rows: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per class: the faces of the set, and how many of them were shown found
    (IoU 0.5) and given their class."""
    from maskdet.study.scene_headroom import class_positives
    from maskdet.study.scenes import shown_rows

    shown = shown_rows(rows)
    hits = shown[shown["true_label"].notna()]
    faces = class_positives(scenes)
    return {
        label: {
            "faces": faces[label],
            "called_right": int(((hits["true_label"] == label) & (hits["label"] == label)).sum()),
        }
        for label in LABELS
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare_folds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("a", type=Path, help="the first run's kept folder (the reference)")
    parser.add_argument("b", type=Path, help="the second run's kept folder (the setting tried)")
    add_voc_argument(parser)
    parser.add_argument("--draws", type=int, default=2000, help="bootstrap resamples of the photos (default: 2000)")
    parser.add_argument("--out", type=Path, help="also write the comparison there (JSON)")
    args = parser.parse_args(argv)
    if args.draws < 100:
        parser.error(f"--draws {args.draws}: an interval needs at least 100 resamples")
    found = voc_folder(args.voc)
    if found is None:
        return 2
    from maskdet.io.atomic import write_json_atomic
    from maskdet.study.scene_intervals import scene_groups
    from maskdet.study.scenes import read_scenes

    try:
        photos, folds = tested_photos(args.a)
        a, b = pooled_answers(args.a, folds), pooled_answers(args.b, folds)
    except FileNotFoundError as missing:
        parser.error(str(missing))
    scenes = [s for s in read_scenes(found[0]) if s.image.stem in photos]
    manifest = pd.read_csv(args.a / "project" / "data" / "processed" / "manifest.csv", dtype=str, keep_default_na=False)
    print(f"compare: {len(scenes)} photos, {args.draws} resamples ...", file=sys.stderr)
    figures = paired_differences(scenes, a, b, scene_groups(scenes, manifest), args.draws)
    results = {
        "a": str(args.a),
        "b": str(args.b),
        "photos": len(scenes),
        **figures,
        "detection": {"a": detection_counts(scenes, a), "b": detection_counts(scenes, b)},
        "called_right": {"a": called_right(scenes, a), "b": called_right(scenes, b)},
    }
    print(f"{'':36} {'A':>6} {'B':>6}  B - A (95 % interval)")
    for name in ("map50", *(f"ap50_{label}" for label in LABELS)):
        f = figures[name]
        gain = f"{f['b_minus_a']:+.3f} ({f['ci95_low']:+.3f} to {f['ci95_high']:+.3f})"
        print(f"{name:36} {f['a']:6.3f} {f['b']:6.3f}  {gain}")
    found = results["detection"]
    for name in ("recall", "precision"):
        print(f"{'detection ' + name + ', IoU 0.5':36} {found['a'][name]:6.3f} {found['b'][name]:6.3f}")
    print(f"{'answers':36} {found['a']['answers']:6d} {found['b']['answers']:6d}  for {found['a']['faces']} faces")
    right = results["called_right"]
    for label in LABELS:
        a_right, b_right = right["a"][label]["called_right"], right["b"][label]["called_right"]
        print(f"{label + ' called right':36} {a_right:6d} {b_right:6d}  of {right['a'][label]['faces']}")
    if args.out:
        write_json_atomic(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
