"""Street photos: the Predictor on annotated street and crowd photos (Pascal
VOC) as a still photo is seen (``predict.photo``: twice its size, faces from
4 px) and as a video frame is seen (the fast ``predict.centerface_input``,
faces from ``predict.min_face``), in one run.

    python -m benchmarks.street            (or `make bench-street`)

For each setting: detection recall by face width and precision at IoU 0.5 and
0.3 of the faces shown, AP per class and mAP of the faces ranked from
``evaluate.scene_candidates_from`` (as the evaluation stage ranks them), and
the time per photo of the faces shown (the whole Predictor: detect, crop,
classify; p50 and p95). The photos: ``--voc FOLDER``,
``$MASKDET_STREET_PHOTOS``, or a ``shared/kaggle853dev`` beside the project
(596 photos of the public Kaggle face-mask set) when there is one; without
any, the benchmark says so and stops. Results go to benchmarks/street.json
and, with --readme, into docs/results/real-scenes.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks.bench import measured_on, publish
from maskdet import LABELS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VOC = ROOT.parent / "shared" / "kaggle853dev"
MARKERS = ("<!-- street:start -->", "<!-- street:end -->")
SETTINGS = {
    "photo": "a still photo (predict.photo)",
    "frame": "a video frame (predict.centerface_input, min_face)",
}


def add_voc_argument(parser: argparse.ArgumentParser) -> None:
    """``--voc FOLDER``, as every benchmark on street photos takes it."""
    parser.add_argument(
        "--voc",
        default=None,
        metavar="FOLDER",
        help="street photos in Pascal VOC (images/, annotations/) (default: $MASKDET_STREET_PHOTOS, else "
        "shared/kaggle853dev beside the project if there)",
    )


def voc_folder(given: str | None) -> tuple[Path, str] | None:
    """The street photos (``--voc``, ``$MASKDET_STREET_PHOTOS`` or ``DEFAULT_VOC``)
    and how the results name them; None, said on standard error, when there are none."""
    folder = Path(given or os.environ.get("MASKDET_STREET_PHOTOS") or DEFAULT_VOC)
    if not (folder / "annotations").is_dir():
        print(
            f"benchmark: no street photos ({folder} has no annotations/; give --voc FOLDER in Pascal VOC); "
            "nothing measured",
            file=sys.stderr,
        )
        return None
    return (
        folder,
        "photos of the public Kaggle face-mask set (CC0)" if folder == DEFAULT_VOC else f"photos of {folder.name}",
    )


def load(model: Path, folder: Path, limit: int | None = None):
    """The default Predictor of ``model``, the labelled set of ``folder`` (its
    first ``limit`` photos and their faces), read once for every measurement,
    and the detector score down to which the evaluation ranks candidates."""
    from dataclasses import replace

    from maskdet.params import load_params
    from maskdet.predict.predictor import Predictor
    from maskdet.study.crosseval import read_labelled_set

    params = load_params(ROOT / "params.yaml", check_paths=False)
    predictor = Predictor(model, params.predict)
    data = read_labelled_set(folder)
    if limit is not None:
        scenes = data.read.scenes[:limit]
        photos = {scene.image for scene in scenes}
        items = [i for i in data.read.items if i.path in photos]
        data = replace(data, read=replace(data.read, scenes=scenes, items=items))
    return predictor, data, params.evaluate.scene_candidates_from


def measure(predictor, data, setting: str, candidates_from: float) -> dict:
    """Scene scores and time per photo of the Predictor in one ``setting``: the
    time of the faces it shows, the scores of its faces ranked from the detector
    score ``candidates_from``, as the evaluation stage ranks them."""
    from maskdet.io.images import load_rgb
    from maskdet.predict.predictor import Prediction
    from maskdet.study.scenes import candidate_predictor, scene_metrics_both_ious

    scenes = data.read.scenes
    wide, shown_from = candidate_predictor(predictor, candidates_from)

    answers, ms = [], []
    for scene in scenes:
        rgb = load_rgb(scene.image)
        started = time.perf_counter()
        predictor.faces(rgb, photo=setting == "photo")
        ms.append((time.perf_counter() - started) * 1000)
        faces = wide.faces(rgb, photo=setting == "photo")
        answers.append(Prediction(scene.image.name, rgb.shape[1], rgb.shape[0], ms[-1], None, faces))
    scores, _ = scene_metrics_both_ious(scenes, answers, shown_from)
    ms.sort()
    return {
        **scores,
        "photos": len(scenes),
        "p50_ms": statistics.median(ms),
        "p95_ms": ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))],
        "detector_input": "x".join(map(str, predictor.detector.input_size)) if setting == "frame" else "2x the photo",
    }


SMALL = 16  # px: under this width the classifier sees a face of a few dozen pixels, upscaled


def crops(predictor, data) -> dict:
    """The classifier alone on the annotated faces (``maskdet evaluate``'s
    crops view): each class's share called right and the macro-F1, for every
    face and for the faces under ``SMALL`` px."""
    from maskdet.study.crosseval import predict_rows, summarise

    rows = predict_rows(predictor, data, ("crops",))
    width = [item.box[2] - item.box[0] for item in data.read.items]
    small = rows[[w < SMALL for w in width]]
    every, under = summarise(rows, data)["crops"], summarise(small, data)["crops"] if len(small) else {}
    keep = ["n", "f1_macro", *(f"{label}_called_right" for label in data.labels)]
    return {"every": {k: every[k] for k in keep}, f"under_{SMALL}px": {k: under[k] for k in keep if k in under}}


def table(results: dict) -> str:
    photo, frame = results["photo"], results["frame"]
    bins = [k.removeprefix("faces_") for k in photo if k.startswith("faces_")]
    rows = [
        ("detection recall / precision, IoU 0.5", lambda r: f"{r['recall']:.3f} / {r['precision']:.3f}"),
        ("detection recall / precision, IoU 0.3", lambda r: f"{r['recall_iou30']:.3f} / {r['precision_iou30']:.3f}"),
        ("mAP@0.5 (mAP@0.3)", lambda r: f"{r['map50']:.3f} ({r['map30']:.3f})"),
        *(
            (
                f"AP@0.5 {label}",
                lambda r, label=label: f"{r[f'ap50_{label}']:.3f}",
            )
            for label in ("with_mask", "without_mask", "mask_weared_incorrect")
        ),
        *(
            (f"recall, faces {b} px wide ({photo[f'faces_{b}']})", lambda r, b=b: f"{r[f'recall_{b}']:.2f}")
            for b in bins
        ),
        ("time per photo, p50 / p95 (ms)", lambda r: f"{r['p50_ms']:.0f} / {r['p95_ms']:.0f}"),
    ]
    lines = [f"| {photo['photos']} {results['note']} | as a still photo | as a video frame |", "|---|---:|---:|"]
    lines += [f"| {title} | {cell(photo)} | {cell(frame)} |" for title, cell in rows]
    if "crops" in results:  # the classifier alone on the annotated faces
        parts = {"every": "every face", f"under_{SMALL}px": f"faces under {SMALL} px"}
        lines += [
            "",
            "| the annotated faces, classifier alone | faces | macro-F1 | with / without / incorrect called right |",
            "|---|---:|---:|---|",
        ]
        for key, name in parts.items():
            part = results["crops"].get(key) or {}
            if part:
                called = " / ".join(f"{part.get(f'{label}_called_right', float('nan')):.3f}" for label in LABELS)
                lines.append(f"| {name} | {part['n']} | {part['f1_macro']:.3f} | {called} |")
    lines.append(
        f"\n{photo['faces']} faces in {photo['photos']} photos; the default model; {results['cpu']}"
        + (f", {results['cores']} cores; measured {results['date']}" if "date" in results else "")
        + " with `make bench-street`."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.street", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_voc_argument(parser)
    parser.add_argument("--model", default=str(ROOT / "models"), help="maskdet model folder (default: models/)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "street.json"), help="results JSON")
    parser.add_argument(
        "--readme",
        action="store_true",
        help="also write the table into the documentation (the page holding its markers)",
    )
    args = parser.parse_args(argv)
    found = voc_folder(args.voc)
    if found is None:
        return 2
    folder, note = found
    if not (Path(args.model) / "metadata.json").is_file():
        print(f"{args.model}: no trained model; run `make repro` first", file=sys.stderr)
        return 2
    results = {
        "note": note,
        **measured_on(),
    }
    predictor, data, candidates_from = load(Path(args.model), folder, args.limit)
    for setting in SETTINGS:
        print(f"benchmark: street photos as {SETTINGS[setting]} ...", file=sys.stderr)
        results[setting] = measure(predictor, data, setting, candidates_from)
    print("benchmark: the annotated faces through the classifier alone (crops) ...", file=sys.stderr)
    results["crops"] = crops(predictor, data)
    publish(results, args.out, table(results), args.readme, MARKERS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
