"""Your own data, cross-validated: the steps of "Your own data" (Data) on a
VOC set K times, each time with another fifth (for K = 5) of the photos as
the test split, and every photo's answers pooled into one scene evaluation.

    python -m benchmarks.own_data_folds --folds 5     (or `make bench-own-data-folds`)

`make bench-own-data` tests one split: on 596 Kaggle street photos, 90 test
photos holding 13 incorrectly worn masks, where one face moves the AP of
that class by about 0.08 and which photos are tested moves the mAP by up to
0.05. Here every photo is tested once, by a model that never saw it: the
86 incorrectly worn masks of that set all count. The folds are drawn as the
study's split is (whole photo groups, each class spread evenly:
maskdet/data/folds.py), and each fold's other photos are split into
training and validation in the study's own proportions. The data stage runs
once as drawn to learn the photo groups; each fold then gets its split file
(``data.split_from``) and runs the pipeline up to the evaluation stage.
The folds follow from the photos, ``data.seed`` and the data stage's photo
groups: two runs that differ in a setting of training or prediction test
the same photos in the same folds, so their pooled figures compare face by
face; a setting that changes the crops (``data.crop_padding``) may link
other near duplicates and so draw other folds. ``--folds-from`` gives
such a run the folds of an earlier one (its kept ``project/data/splits``):
the split files name each face by its photo and box, which no setting
changes.

With ``--keep FOLDER``, ``FOLDER/fold-<k>`` holds each fold's answers
(``scene_predictions.csv``), model (``models``) and test photos (``scenes``):
benchmarks/compare_folds.py compares two kept runs photo by photo, and
benchmarks/rescore_folds.py tries a setting of prediction on every fold
without training again.

Recorded in benchmarks/own-data-folds.json: the pooled mAP@0.5, AP per
class with 95 % intervals over the photos, detection recall and precision,
where the pooled mAP is lost (``scene_headroom``), the test crops' macro-F1
and recall per class pooled, and each fold's own figures and minutes. The
photos and ``--set`` are as for `make bench-own-data`; each fold takes about
as long as one of its trainings (12-15 min on 2 cores).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from benchmarks.bench import measured_on
from benchmarks.own_data import (
    add_run_arguments,
    change_params,
    prepare,
    reproduce,
    run_folder,
    run_header,
    scene_answers,
    summarise,
)
from benchmarks.project import tree_commit
from benchmarks.street import voc_folder
from maskdet import LABELS
from maskdet.paths import SPLITS_DIR


def write_fold_files(project: Path, k: int) -> list[Path]:
    """The split file of each fold (``data/splits/fold-<i>-of-<k>.csv`` in
    ``project``), drawn from the photo groups of the data stage's manifest with
    ``data.seed``; the user's faces only (the built-in set beside them is
    never tested)."""
    from maskdet.data.folds import fold_of_items, fold_sides
    from maskdet.io.atomic import atomic_path

    params = yaml.safe_load((project / "params.yaml").read_text())["data"]
    manifest = pd.read_csv(project / "data" / "processed" / "manifest.csv", dtype=str, keep_default_na=False)
    own = manifest[manifest["dataset"] == params["source"]]
    labels, groups = own["label"].tolist(), own["group"].tolist()
    folds = fold_of_items(labels, groups, k, params["seed"])
    files = []
    for fold in range(k):
        sides = fold_sides(labels, groups, folds, fold, params["split"], params["seed"])
        path = project / SPLITS_DIR / f"fold-{fold + 1}-of-{k}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            pd.DataFrame({"source": own["source"], "photo": own["photo"], "split": sides}).to_csv(tmp, index=False)
        files.append(path)
    return files


def earlier_fold_files(folder: Path, k: int) -> list[Path]:
    """The split files of an earlier run's ``k`` folds (``fold-<i>-of-<k>.csv``
    in ``folder``: that run's kept ``project/data/splits``)."""
    files = [folder / f"fold-{fold}-of-{k}.csv" for fold in range(1, k + 1)]
    missing = [file.name for file in files if not file.is_file()]
    if missing:
        raise FileNotFoundError(
            f"--folds-from {folder}: no {', '.join(missing)}; give the data/splits folder of a run kept with "
            f"--keep and --folds {k}"
        )
    return files


def copy_fold_files(files: list[Path], project: Path) -> list[Path]:
    """``files`` copied into ``project``'s ``data/splits``, where
    ``data.split_from`` finds them."""
    (project / SPLITS_DIR).mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(file, project / SPLITS_DIR / file.name)) for file in files]


def keep_fold(project: Path, folder: Path) -> None:
    """The fold's model (``models``) and test photos (``scenes``) copied into
    ``folder``, beside its answers: a setting of prediction is then tried on
    every fold in minutes (benchmarks/rescore_folds.py), without training again."""
    shutil.copytree(project / "models", folder / "models", dirs_exist_ok=True)
    shutil.copytree(project / "data" / "processed" / "scenes", folder / "scenes", dirs_exist_ok=True)


def detection_counts(scenes: list, rows: pd.DataFrame) -> dict[str, float]:
    """The answers shown, the faces of the set, how many of them a shown answer
    matched at IoU 0.5, and so detection recall and precision."""
    from maskdet.study.scene_headroom import class_positives
    from maskdet.study.scenes import shown_rows

    rows = shown_rows(rows)
    faces = sum(class_positives(scenes).values())
    found = int(rows["true_label"].notna().sum())
    return {
        "answers": len(rows),
        "faces": faces,
        "found": found,
        "recall": found / faces if faces else float("nan"),
        "precision": found / len(rows) if len(rows) else float("nan"),
    }


def pooled_figures(scenes: list, rows: pd.DataFrame, crops: pd.DataFrame) -> dict:
    """One scene evaluation of every fold's test photos and answers together
    (``scene_metrics``' rows at IoU 0.5), and the test crops' figures over
    every fold's crops (``label`` and ``predicted``)."""
    from sklearn.metrics import f1_score

    from maskdet.study.scene_headroom import class_positives, scene_headroom
    from maskdet.study.scene_intervals import scene_intervals

    table = scene_headroom(scenes, rows)
    answered = table[table["case"] == "as_answered"].iloc[0]
    positives = class_positives(scenes)
    detection = detection_counts(scenes, rows)
    scene = {
        "photos": len(scenes),
        "faces": detection["faces"],
        **{f"faces_{label}": n for label, n in positives.items()},
        "recall": detection["recall"],
        "precision": detection["precision"],
        "map50": float(answered["map50"]),
        **{f"ap50_{label}": float(answered[f"ap50_{label}"]) for label in LABELS},
        **scene_intervals(scenes, rows),
    }
    test = {
        "n": len(crops),
        "f1_macro": float(f1_score(crops["label"], crops["predicted"], labels=list(LABELS), average="macro")),
    }
    for label in LABELS:
        mine = crops[crops["label"] == label]
        test[f"support_{label}"] = len(mine)
        test[f"recall_{label}"] = float((mine["predicted"] == label).mean()) if len(mine) else float("nan")
    return {"scene": scene, "test": test, "headroom": dict(zip(table["case"], table["map50"].astype(float)))}


def fold_figures(fold: int, summary: dict, seconds: float) -> dict:
    """One fold's own headline figures (``summarise``'s)."""
    scene, test = summary["scene"], summary["test"]
    return {
        "fold": fold,
        "test_photos": summary["data"]["test_photos"],
        "minutes": round(seconds / 60, 1),
        **{key: scene[key] for key in ("map50", "ap50_mask_weared_incorrect") if key in scene},
        **{key: test[key] for key in ("f1_macro", "support_mask_weared_incorrect") if key in test},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.own_data_folds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(parser, "own-data-folds.json", "every fold")
    parser.add_argument("--folds", type=int, default=5, metavar="K", help="folds, each photo tested once (default: 5)")
    parser.add_argument(
        "--folds-from",
        metavar="FOLDER",
        type=Path,
        help="an earlier run's folds (the data/splits folder of its --keep folder): the same photos tested in the "
        "same folds, to compare a setting that changes the crops, such as data.crop_padding",
    )
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error(f"--folds {args.folds}: cross-validation needs at least 2 folds")
    earlier = None
    if args.folds_from is not None:
        try:
            earlier = earlier_fold_files(args.folds_from, args.folds)
        except FileNotFoundError as missing:
            parser.error(str(missing))
    found = voc_folder(args.voc)
    if found is None:
        return 2
    folder, note = found
    from maskdet.io.atomic import write_json_atomic
    from maskdet.study.scenes import read_scenes

    commit = tree_commit()
    started = time.perf_counter()
    with run_folder(args.keep, "maskdet-own-data-folds-") as work:
        project = prepare(folder, work / "project", args.settings)
        if earlier is not None:
            files = copy_fold_files(earlier, project)
        else:
            print(f"benchmark: the data stage on {folder.name} in {project}, for its photo groups ...", file=sys.stderr)
            reproduce(project, work / "repro-data.log", target="data")
            files = write_fold_files(project, args.folds)
        scenes, rows, crops, folds = [], [], [], []
        for fold, file in enumerate(files, start=1):
            print(f"benchmark: fold {fold} of {args.folds} (about 12-15 min on 2 cores) ...", file=sys.stderr)
            change_params(project, [(["data", "split_from"], file.relative_to(project).as_posix())])
            seconds = reproduce(project, work / f"repro-fold-{fold}.log", target="evaluate")
            folds.append(fold_figures(fold, summarise(project), seconds))
            answers = scene_answers(project, work / f"fold-{fold}")
            keep_fold(project, answers)
            scenes += read_scenes(project / "data" / "processed" / "scenes")
            rows.append(pd.read_csv(answers / "scene_predictions.csv"))
            crops.append(pd.read_csv(project / "reports" / "tables" / "test_predictions.csv"))
        results = {
            **run_header(note, folder, args.settings),
            "folds": args.folds,
            "folds_from": str(args.folds_from) if args.folds_from else None,
            **pooled_figures(scenes, pd.concat(rows, ignore_index=True), pd.concat(crops, ignore_index=True)),
            "per_fold": folds,
            "minutes": round((time.perf_counter() - started) / 60, 1),
            "commit": commit,
            **measured_on(),
        }
    write_json_atomic(Path(args.out), results)
    scene = results["scene"]
    print(
        f"{scene['photos']} photos in {args.folds} folds, {results['minutes']} min: pooled mAP@0.5 "
        f"{scene['map50']:.3f}, AP incorrect {scene['ap50_mask_weared_incorrect']:.3f}, test crops macro-F1 "
        f"{results['test']['f1_macro']:.3f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
