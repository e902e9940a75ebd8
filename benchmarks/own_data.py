"""Your own data, done as the documentation says (Data, "Your own data"): a
copy of the project with ``data.source: voc`` and ``data.path`` the photos'
folder, everything else as committed, then the whole pipeline (``dvc
repro``), timed. The result is what a user who brings the set gets: the
faces kept and how they were split, the scene evaluation of the test photos
(mAP@0.5, AP per class, recall by face width, and where the mAP is lost:
``maskdet evaluate`` on the test photos), the test crops, the box correction
fitted on the training photos, and the minutes it took.

    python -m benchmarks.own_data            (or `make bench-own-data`)

The photos: ``--voc FOLDER``, ``$MASKDET_STREET_PHOTOS``, or a
``shared/kaggle853dev`` beside the project (596 photos of the public Kaggle
face-mask set) when there is one; without any, the benchmark says so and
stops. ``--set train.seed=43`` (repeatable) changes a setting for the run,
as ``dvc exp run -S`` would: what a setting is worth on the set.
``--seeds N`` trains N times on the same photos (``train.seed``, then the
next seeds; each retraining re-runs the train, evaluate and report stages):
one retraining moves this set's mAP by a few hundredths, more than most
settings, so every seed's figures are recorded beside the first run's.
``--save-split FILE`` writes the run's
split and ``--split FILE`` makes a later run take it (``data.split_from``):
which photos are tested moves this set's figures more than most settings, so
a setting that changes the crops is compared on one split. The copy lives in a temporary folder
(``--keep`` keeps it, to open its reports and MLflow store). Results go to benchmarks/own-data.json, from which
tools/docs.py writes the paragraph of docs/results/real-scenes.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from benchmarks.bench import measured_on
from benchmarks.project import ROOT, copy_project, tree_commit, user_env
from benchmarks.street import add_voc_argument, voc_folder
from maskdet import LABELS
from maskdet.paths import SPLITS_DIR

# Where the docs' "Your own data" puts a downloaded VOC set.
DATA_PATH = "data/raw/kaggle"
# The test crops' figures a study of the set is read by.
TEST_KEYS = ["n", "f1_macro", "accuracy", *(f"{k}_{label}" for k in ("recall", "support") for label in LABELS)]


def setting(text: str) -> tuple[list[str], object]:
    """``section.key=value`` (as ``dvc exp run -S`` takes it): the key's path and the value, read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key or "." not in key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected section.key=value, for example train.seed=43")
    return key.split("."), yaml.safe_load(value)


def prepare(folder: Path, dest: Path, settings: list[tuple[list[str], object]] = (), split: Path | None = None) -> Path:
    """The project copied to ``dest`` with the photos in ``DATA_PATH``, params.yaml
    pointing at them, the ``split`` file (if any) as ``data.split_from`` and any
    other ``settings`` changed."""
    project = copy_project(dest)
    shutil.copytree(folder, project / DATA_PATH)
    changes = [(["data", "source"], "voc"), (["data", "path"], DATA_PATH)]
    if split is not None:
        held = Path(SPLITS_DIR) / split.name
        (project / held).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(split, project / held)
        changes.append((["data", "split_from"], held.as_posix()))
    change_params(project, [*changes, *settings])
    return project


def change_params(project: Path, settings: list[tuple[list[str], object]]) -> None:
    """``project``'s params.yaml with each ``(key path, value)`` of ``settings`` set."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for path, value in settings:
        section = params
        for part in path[:-1]:
            section = section.setdefault(part, {})
        section[path[-1]] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def reproduce(project: Path, log: Path, target: str | None = None) -> float:
    """``dvc repro`` in ``project`` as a user runs it (the venv's tools first on
    PATH, the copy's own MLflow store), up to the stage ``target`` if one is
    given; its seconds. The output goes to ``log``."""
    started = time.perf_counter()
    with log.open("w") as out:
        command = ["dvc", "repro", *([target] if target else [])]
        done = subprocess.run(command, cwd=project, stdout=out, stderr=subprocess.STDOUT, env=user_env())
    if done.returncode != 0:
        raise SystemExit(f"benchmark: `dvc repro` failed in {project} (see {log}):\n{log.read_text()[-3000:]}")
    return time.perf_counter() - started


def summarise(project: Path) -> dict:
    """What a study of a VOC set is read by, from the reports its pipeline wrote."""
    validation = json.loads((project / "reports" / "data_validation.json").read_text())
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    metadata = json.loads((project / "models" / "metadata.json").read_text())
    data = {key: validation.get(key) for key in ("items_read", "kept", "dropped_by_reason", "groups")}
    data["train_photos"], data["test_photos"] = validation.get("train_scenes"), validation.get("test_scenes")
    # the set's own crops per split and class (the built-in set beside them trains too, never tests)
    with open(project / "data" / "processed" / "manifest.csv", newline="") as fh:
        own = Counter((r["split"], r["label"]) for r in csv.DictReader(fh) if r["dataset"] == validation["source"])
    data["counts"] = {split: {label: own[(split, label)] for label in LABELS} for split in ("train", "val", "test")}
    return {
        "data": data,
        "scene": metrics.get("scene", {}),
        "test": {key: metrics["test"][key] for key in TEST_KEYS if key in metrics.get("test", {})},
        "box_correction": metadata.get("box_correction"),
    }


# The figures recorded for each training seed (--seeds).
SEED_KEYS = {
    "scene": ["map50", *(f"ap50_{label}" for label in LABELS)],
    "test": ["f1_macro", "recall_mask_weared_incorrect"],
}


def seed_figures(summary: dict, seed: int, seconds: float) -> dict:
    """One training's headline figures (``summarise``'s), for the ``seeds`` list."""
    found = {"seed": seed, "minutes": round(seconds / 60, 1)}
    for section, keys in SEED_KEYS.items():
        found.update({key: summary[section][key] for key in keys if key in summary[section]})
    return found


def scene_answers(
    project: Path,
    out: Path,
    scenes: Path | str = "data/processed/scenes",
    model: Path | None = None,
    params: Path | None = None,
) -> Path:
    """``maskdet evaluate`` run in ``project`` on its test photos (or the VOC
    folder ``scenes``) with its model and params.yaml (or ``model`` and
    ``params``), its files written to ``out`` (``scene_predictions.csv``: every
    answer with its box and the face it matched; ``scene_headroom.csv``);
    returns ``out``."""
    command = ["maskdet", "evaluate", str(scenes), "--views", "scenes", "--no-mlflow", "-q", "--out", str(out)]
    command += [*(["--model", str(model)] if model else []), *(["--params", str(params)] if params else [])]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, env=user_env())
    if done.returncode != 0:
        raise SystemExit(f"benchmark: `maskdet evaluate` on {scenes} failed in {project}:\n{done.stderr[-3000:]}")
    return out


def headroom(project: Path, work: Path) -> dict:
    """Where the test photos' mAP@0.5 is lost, as ``maskdet evaluate`` on them
    says it (``scene_headroom``): each case's mAP, by the case's key."""
    out = scene_answers(project, work / "headroom")
    with open(out / "scene_headroom.csv", newline="") as fh:
        return {row["case"]: float(row["map50"]) for row in csv.DictReader(fh)}


def reseed(project: Path, seed: int) -> None:
    """``project``'s params.yaml with ``train.seed`` set to ``seed`` (the next
    ``dvc repro`` re-runs the stages that read it, not the data stage)."""
    change_params(project, [(["train", "seed"], seed)])


def save_split(project: Path, dest: Path) -> None:
    """``project``'s manifest, which is a split file (``--split`` of a later run:
    the next setting is then tested on the same photos)."""
    from maskdet.io.atomic import atomic_path

    with atomic_path(dest) as tmp:
        shutil.copyfile(project / "data" / "processed" / "manifest.csv", tmp)


@contextlib.contextmanager
def run_folder(keep: str | None, prefix: str):
    """The folder a benchmark runs in: ``keep`` (left for the user to open) or a
    temporary one, removed when the run ends however it ends."""
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def run_header(note: str, folder: Path, settings: list[tuple[list[str], object]]) -> dict:
    """What a results file of "Your own data" opens with: the photos (``note``,
    their count in ``folder``) and the ``--set`` settings."""
    return {
        "note": note,
        "photos": len(list((folder / "annotations").glob("*.xml"))),
        "settings": {".".join(path): value for path, value in settings},
    }


def add_run_arguments(parser: argparse.ArgumentParser, results: str, runs: str) -> None:
    """The photos (``--voc``), ``--out`` (default: benchmarks/``results``),
    ``--keep`` and ``--set`` (applied to ``runs``) of a benchmark of "Your own data"."""
    add_voc_argument(parser)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / results), help="results JSON")
    parser.add_argument("--keep", metavar="FOLDER", help="run in FOLDER and keep it (default: a temporary folder)")
    parser.add_argument(
        "--set",
        dest="settings",
        metavar="SECTION.KEY=VALUE",
        type=setting,
        action="append",
        default=[],
        help=f"another setting of params.yaml for {runs} (repeatable), for example train.seed=43; the pipeline's "
        "own check of params.yaml judges it",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.own_data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser, "own-data.json", "this run")
    parser.add_argument(
        "--split",
        metavar="FILE",
        type=Path,
        help="a split file (from --save-split, or a run's data/processed/manifest.csv) the run takes as "
        "data.split_from: the same test photos as that run, to compare a setting that changes the crops",
    )
    parser.add_argument(
        "--save-split", metavar="FILE", type=Path, help="write this run's split there (its data/processed/manifest.csv)"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="train N times on the same photos, from train.seed on (each retraining after the first about 15 min "
        "on 2 cores): how far one retraining moves the figures (default: 1)",
    )
    args = parser.parse_args(argv)
    if args.split is not None and not args.split.is_file():
        parser.error(f"--split {args.split}: no such file")
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: train at least once (1 or more)")
    found = voc_folder(args.voc)
    if found is None:
        return 2
    folder, note = found
    from maskdet.io.atomic import write_json_atomic

    commit = tree_commit()  # of the tree copied, before anything is changed while it runs
    with run_folder(args.keep, "maskdet-own-data-") as work:
        project = prepare(folder, work / "project", args.settings, args.split)
        print(f"benchmark: `dvc repro` on {folder.name} in {project} (about 20-30 min on 2 cores) ...", file=sys.stderr)
        seconds = reproduce(project, work / "repro.log")
        first = {**summarise(project), "headroom": headroom(project, work)}
        seed = yaml.safe_load((project / "params.yaml").read_text())["train"]["seed"]
        seeds = [seed_figures(first, seed, seconds)]
        for k in range(1, args.seeds):
            reseed(project, seed + k)
            print(f"benchmark: trained again with train.seed {seed + k} ...", file=sys.stderr)
            again = reproduce(project, work / f"repro-seed-{seed + k}.log")
            seeds.append(seed_figures(summarise(project), seed + k, again))
        results = {
            **run_header(note, folder, args.settings),
            "repro_minutes": round(seconds / 60, 1),
            "split_from": args.split.name if args.split else None,
            **first,
            "seeds": seeds,
            "commit": commit,
            **measured_on(),
        }
        if args.save_split:
            save_split(project, args.save_split)
    write_json_atomic(Path(args.out), results)
    scene = results["scene"]
    print(
        f"{results['photos']} photos, {results['repro_minutes']} min: mAP@0.5 {scene.get('map50', float('nan')):.3f}, "
        f"test crops macro-F1 {results['test'].get('f1_macro', float('nan')):.3f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
