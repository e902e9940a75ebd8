"""A setting of prediction tried on every fold of a cross-validated run,
without training again.

    python -m benchmarks.rescore_folds RUN OUT --set predict.KEY=VALUE [--set ...]
    python -m benchmarks.compare_folds RUN OUT

RUN is a folder kept by `python -m benchmarks.own_data_folds --keep RUN`: each
``fold-<k>`` holds that fold's model (``models``) and test photos
(``scenes``). Each fold's test photos are scored again by its own model with
the run's params.yaml and the settings given (``OUT/params.yaml``), by
``maskdet evaluate`` as the study's scene evaluation scores them; the answers
go to ``OUT/fold-<k>/scene_predictions.csv``, which
`benchmarks/compare_folds.py` compares with RUN's, photo by photo. About 10 s
per fold of 120 photos on 2 cores (a minute for five), where a run that
trains takes 65-80 min.

Only ``predict.*`` settings: anything else changes what the models learnt,
which needs `python -m benchmarks.own_data_folds --set ...`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from benchmarks.own_data import change_params, scene_answers, setting


def rescore(run: Path, out: Path, settings: list[tuple[list[str], object]]) -> list[Path]:
    """Every fold of ``run`` scored again with ``settings`` changed in its
    params.yaml; the folders of the new answers (``out/fold-<k>``)."""
    folds = sorted(
        (f for f in run.glob("fold-*") if f.name[5:].isdigit() and (f / "models").is_dir()),
        key=lambda f: int(f.name[5:]),
    )
    if not folds:
        raise FileNotFoundError(
            f"{run}: no fold-<k>/models; give a folder kept by `python -m benchmarks.own_data_folds --keep FOLDER`"
        )
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "project" / "params.yaml", out / "params.yaml")
    change_params(out, settings)
    done = []
    for fold in folds:
        print(f"rescore: {fold.name} ...", file=sys.stderr)
        done.append(
            scene_answers(
                run / "project",
                (out / fold.name).resolve(),
                scenes=(fold / "scenes").resolve(),
                model=(fold / "models").resolve(),
                params=(out / "params.yaml").resolve(),
            )
        )
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.rescore_folds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", type=Path, help="a folder kept by `python -m benchmarks.own_data_folds --keep`")
    parser.add_argument("out", type=Path, help="where the new answers go (compare them with benchmarks.compare_folds)")
    parser.add_argument(
        "--set",
        dest="settings",
        metavar="predict.KEY=VALUE",
        type=setting,
        action="append",
        required=True,
        help="a setting of prediction (repeatable), for example predict.incorrect_share=null; the pipeline's own "
        "check of params.yaml judges it",
    )
    args = parser.parse_args(argv)
    others = [".".join(path) for path, _ in args.settings if path[0] != "predict"]
    if others:
        parser.error(
            f"--set {', '.join(others)}: only predict.* settings can be tried on the kept models; train again with "
            "`python -m benchmarks.own_data_folds --set ...`"
        )
    try:
        folds = rescore(args.run, args.out, args.settings)
    except FileNotFoundError as missing:
        parser.error(str(missing))
    compare = f"python -m benchmarks.compare_folds {args.run} {args.out}"
    print(f"{len(folds)} folds scored again -> {args.out}; compare: {compare}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
