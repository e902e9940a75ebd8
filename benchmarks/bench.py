"""Speed, memory and detection recall of the maskdet Predictor against the
classic res10 SSD + MobileNetV2-224 pipeline, measured in one run.

    python -m benchmarks.bench            (or `make bench`)

Pipelines: the Predictor as params.yaml configures it, the Predictor with
Ultra-Light (400x300) and with BlazeFace, the classic one as published
(``model.predict``) and the classic one with a compiled direct call. Each
runs in its own process so that its peak memory (RSS) is its own. Frames
are 640x480 JPEGs made from the default data's scenes (3-5 faces), pairs of
scenes side by side (6 faces) and the portraits (1 face); each frame goes
decode -> detect -> classify -> annotate. Throughput is images/s over the
full-size scene and portrait files (decode -> detect -> classify). Then each
detector (CenterFace and Ultra-Light at several input sizes, BlazeFace, res10)
is measured alone: its recall and precision on every rendered scene of the
default data, on the faces that wear a mask (correctly or not) and on bare
faces, and its time per frame.

Real photos: given a folder of real photos in one folder per class
(``--real``, ``$MASKDET_REAL_PHOTOS``, or a ``shared/realdev`` beside the
project when there is one), each detector's share of masked and bare photos
with a face found in the framed and close-up views, and the default
Predictor's scores in all three views (``maskdet.study.crosseval``). Without such
a folder the bench says so in one line and leaves those columns out.
Results go to benchmarks/results.json and, with --readme, into docs/predicting.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from maskdet.io.images import letterbox

ROOT = Path(__file__).resolve().parents[1]
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


def decode_jpeg(data: bytes) -> np.ndarray:
    """A compressed frame as the classic pipeline reads it (OpenCV), in RGB."""
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _frame(rgb: np.ndarray) -> np.ndarray:
    """A 640x480 frame showing the whole image."""
    return letterbox(rgb, 640, 480)[0]


def make_inputs(scenes_dir: Path, into: Path) -> tuple[Path, Path, dict]:
    """640x480 frames and a folder of full-size images; returns both folders and faces per frame."""
    from maskdet.io import assets
    from maskdet.io.images import load_rgb, write_jpeg
    from maskdet.study.scenes import read_scenes

    frames, folder = into / "frames", into / "folder"
    frames.mkdir(parents=True)
    folder.mkdir(parents=True)
    scenes = read_scenes(scenes_dir)
    faces = {}
    for scene in scenes:
        rgb = load_rgb(scene.image)
        write_jpeg(frames / f"{scene.image.stem}.jpg", _frame(rgb))
        (folder / scene.image.name).write_bytes(scene.image.read_bytes())
        faces[scene.image.stem] = len(scene.objects)
    threes = [s for s in scenes if len(s.objects) == 3]
    for a, b in zip(threes[0::2], threes[1::2]):
        pair = np.hstack([_frame(load_rgb(a.image)), _frame(load_rgb(b.image))])
        name = f"pair-{a.image.stem}-{b.image.stem}"
        write_jpeg(frames / f"{name}.jpg", _frame(pair))
        faces[name] = 6
    for asset in assets.PORTRAIT_PHOTOS[:3] + (assets.ASTRONAUT_PHOTO,):
        path = assets.extract(asset)
        rgb = load_rgb(path)
        write_jpeg(frames / f"{path.stem}.jpg", _frame(rgb))
        write_jpeg(folder / f"{path.stem}.jpg", rgb)
        faces[path.stem] = 1
    return frames, folder, faces


def _percentiles(ms: list[float]) -> dict:
    return {"p50_ms": statistics.median(ms), "p95_ms": float(np.percentile(ms, 95)), "frames": len(ms)}


# (results key, worker kind, detector): the Predictor as params.yaml configures
# it, with Ultra-Light and with BlazeFace, and the classic pipeline as published
# and with a compiled call instead of model.predict.
PIPELINES = (
    ("maskdet", "maskdet", None),
    ("maskdet_ultralight", "maskdet", "ultralight"),
    ("maskdet_blazeface", "maskdet", "blazeface"),
    ("classic", "classic", None),
    ("classic_compiled", "classic_compiled", None),
)
DETECTOR_SIZES = {"centerface": ((320, 240), (416, 320), (640, 480)), "ultralight": ((400, 300), (640, 480))}
DEFAULT_REAL = ROOT.parent / "shared" / "realdev"  # where the team keeps its real photos, when it is there


def worker(kind: str, frames: Path, folder: Path, repeats: int, model: Path, detector: str | None = None) -> dict:
    """Runs in its own process: latency per frame, throughput, peak RSS."""
    started = time.perf_counter()
    if kind == "maskdet":
        from maskdet.io.images import load_rgb
        from maskdet.params import load_params
        from maskdet.predict.frames import process_frame
        from maskdet.predict.predictor import Predictor

        params = load_params(ROOT / "params.yaml", check_paths=False)
        predictor = Predictor(model, params.predict, detector=detector)

        def frame_step(data: bytes):
            process_frame(predictor, load_rgb(data))

        def image_step(path: Path):
            predictor.predict(path)

        describe = {
            "detector": predictor.detector_name,
            "runtime": predictor.runtime,
            "classifier_input": predictor.input_size,
            "detector_input": predictor.detector_input,
        }
    else:
        from benchmarks.classic import ClassicPipeline

        pipeline = ClassicPipeline(compiled=kind == "classic_compiled")

        def frame_step(data: bytes):
            rgb = decode_jpeg(data)
            pipeline.annotate(rgb, *pipeline(rgb))

        def image_step(path: Path):
            pipeline(decode_jpeg(path.read_bytes()))

        describe = {
            "detector": "res10 SSD 300 (Caffe)",
            "classifier_input": 224,
            "detector_input": "300x300",
            "runtime": "keras, compiled call" if kind == "classic_compiled" else "keras model.predict",
        }
    load_seconds = time.perf_counter() - started
    data = [p.read_bytes() for p in sorted(frames.glob("*.jpg"))]
    for blob in data[:3]:  # warm-up: first calls trace graphs and allocate buffers
        frame_step(blob)
    ms = []
    for _ in range(repeats):
        for blob in data:
            t = time.perf_counter()
            frame_step(blob)
            ms.append((time.perf_counter() - t) * 1000)
    files = sorted(folder.glob("*.jpg"))
    t = time.perf_counter()
    for path in files:
        image_step(path)
    throughput = len(files) / (time.perf_counter() - t)
    return {
        **describe,
        **_percentiles(ms),
        "images_per_s": throughput,
        "load_s": load_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }


def _scene_precision(scenes, detector) -> float:
    """The share of the detector's boxes on the rendered scenes that are an annotated face (IoU 0.5)."""
    from maskdet.io.images import load_rgb
    from maskdet.study.scenes import match

    hits = boxes = 0
    for scene in scenes:
        found = detector(load_rgb(scene.image))
        matched, _ = match(scene.objects, [d.box for d in found], [d.score for d in found])
        hits += sum(m is not None for m in matched)
        boxes += len(matched)
    return hits / boxes if boxes else float("nan")


def real_photos(path: str | None) -> tuple[dict | None, str]:
    """The real photos (RGB by class) to measure on, or None, and a line saying which."""
    from maskdet.io.images import ImageError, load_rgb
    from maskdet.study.crosseval import read_labelled_set

    if path == "":
        return None, "real photos: none asked for (--real ''); the real-photo columns are left out"
    folder = Path(path) if path else DEFAULT_REAL
    if not folder.is_dir():
        return None, (
            f"real photos: none ({folder} not found; give --real FOLDER with one folder per class); "
            "the real-photo columns are left out"
        )
    data = read_labelled_set(folder)
    photos = {}
    for item in data.read.items:
        try:
            photos.setdefault(item.label, []).append(load_rgb(item.path))
        except ImageError:
            continue
    counts = ", ".join(f"{len(v)} {k}" for k, v in photos.items())
    where = "shared/realdev beside the project" if folder == DEFAULT_REAL else str(folder)
    return photos, f"Real photos: {sum(map(len, photos.values()))} ({counts}) from {where}"


def measure_detectors(scenes_dir: Path, frames: Path, photos: dict | None = None, min_face: int = 20) -> dict:
    """Each detector's recall and precision on every rendered scene, its own time
    on the 640x480 frames (p50, this process, one after another), and with real
    photos the share of them where it finds a face (of ``min_face`` pixels or
    more, as the Predictor keeps) in the framed and close-up views."""
    from benchmarks.classic import Res10Detector
    from maskdet.io.images import load_rgb
    from maskdet.predict.detectors import detect_zoomed_out
    from maskdet.predict.predictor import make_detector
    from maskdet.study.scenes import detection_recall, detection_table, read_scenes
    from maskdet.study.views import view_of

    scenes = read_scenes(scenes_dir)
    detectors = {
        f"{name} {w}x{h}": make_detector(name, input_size=(w, h))
        for name, sizes in DETECTOR_SIZES.items()
        for w, h in sizes
    }
    detectors.update({"blazeface 192x192": make_detector("blazeface"), "res10 (classic) 300x300": Res10Detector()})
    images = [load_rgb(p.read_bytes()) for p in sorted(frames.glob("*.jpg"))]
    out = {}
    for name, detector in detectors.items():
        for rgb in images[:3]:
            detector(rgb)
        ms = []
        for rgb in images:
            t = time.perf_counter()
            detector(rgb)
            ms.append((time.perf_counter() - t) * 1000)
        out[name] = {
            **detection_recall(detection_table(scenes, detector)),
            "precision": _scene_precision(scenes, detector),
            "p50_ms": statistics.median(ms),
        }
        if photos:

            def found(rgb, detect=detector):  # faces the Predictor keeps (min_face)
                return any(min(d.width, d.height) >= min_face for d in detect(rgb))

            for label, short in (("with_mask", "masked"), ("without_mask", "bare")):
                shots = photos.get(label, [])
                framed = [found(view_of(rgb, "framed")) for rgb in shots]
                closeup = [found(rgb) for rgb in shots]
                # As the Predictor with closeup_retry: a second look, zoomed out, where none was found.
                retry = [
                    hit or found(rgb, lambda x, detector=detector: detect_zoomed_out(detector, x))
                    for hit, rgb in zip(closeup, shots)
                ]
                for key, hits in (("framed", framed), ("closeup", closeup), ("closeup_retry", retry)):
                    out[name][f"real_{key}_{short}"] = float(np.mean(hits)) if hits else float("nan")
    return out


def measure_real_pipeline(model: Path, folder: Path) -> dict:
    """The default Predictor on the real photos in all three views (``maskdet evaluate``'s scores)."""
    from maskdet.params import load_params
    from maskdet.predict.predictor import Predictor
    from maskdet.study import crosseval

    predictor = Predictor(model, load_params(ROOT / "params.yaml", check_paths=False).predict)
    data = crosseval.read_labelled_set(folder)
    return crosseval.summarise(crosseval.predict_rows(predictor, data, crosseval.FOLDER_VIEWS), data)


def table(results: dict) -> str:
    classic, compiled = results["classic"], results["classic_compiled"]
    ours = [(key, results[key]) for key, kind, _ in PIPELINES if kind == "maskdet"]
    titles = {
        "maskdet": "maskdet (default)",
        "maskdet_ultralight": "maskdet, Ultra-Light",
        "maskdet_blazeface": "maskdet, BlazeFace",
    }
    rows = [
        ("p50 latency per 640x480 frame (ms)", "p50_ms", "{:.1f}"),
        ("p95 latency per frame (ms)", "p95_ms", "{:.1f}"),
        ("batch throughput, full-size images (images/s)", "images_per_s", "{:.1f}"),
        ("peak memory, RSS (MB)", "peak_rss_mb", "{:.0f}"),
        ("start-up: load models (s)", "load_s", "{:.1f}"),
    ]
    lines = [
        "| | " + " | ".join(titles[k] for k, _ in ours) + " | classic | classic, compiled call |",
        "|---|" + "---:|" * (len(ours) + 2),
        "| detector, input | "
        + " | ".join(f"{r['detector']} {r['detector_input']}" for _, r in ours)
        + f" | res10 {classic['detector_input']} | res10 {compiled['detector_input']} |",
    ]
    for title, key, fmt in rows:
        cells = [fmt.format(r[key]) for _, r in ours] + [fmt.format(classic[key]), fmt.format(compiled[key])]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    for base, title, bold in ((classic, "**classic p50 / ours**", "**"), (compiled, "classic compiled p50 / ours", "")):
        ratios = [f"{bold}{base['p50_ms'] / r['p50_ms']:.1f}x{bold}" for _, r in ours]
        rest = [f"{base['p50_ms'] / classic['p50_ms']:.1f}x", f"{base['p50_ms'] / compiled['p50_ms']:.1f}x"]
        lines.append(f"| {title} | " + " | ".join(ratios + rest) + " |")
    lines.append(
        "| peak RSS, classic / ours | "
        + " | ".join(f"{classic['peak_rss_mb'] / r['peak_rss_mb']:.1f}x" for _, r in ours)
        + " | 1.0x | |"
    )
    real = "real" in results
    head = "| detector, input | rendered scenes: recall, masked | recall, bare | precision | p50 per frame (ms) |"
    rule = "|---|---:|---:|---:|---:|"
    if real:
        head += (
            " real, framed: masked found | bare found | real, close-up: masked found | bare found | "
            "close-up with retry: masked | bare |"
        )
        rule += "---:|" * 6
    lines += ["", head, rule]
    for name, r in results["detectors"].items():
        line = (
            f"| {name} | {r['recall_masked']:.3f} | {r['recall_unmasked']:.3f} | {r['precision']:.3f} | "
            f"{r['p50_ms']:.1f} |"
        )
        if real:
            line += "".join(
                f" {r[k]:.3f} |"
                for k in (
                    "real_framed_masked",
                    "real_framed_bare",
                    "real_closeup_masked",
                    "real_closeup_bare",
                    "real_closeup_retry_masked",
                    "real_closeup_retry_bare",
                )
            )
        lines.append(line)
    if real:
        p = results["real"]
        lines += [
            "",
            "| the default Predictor on the real photos | masked faces found | masked called with_mask | "
            "bare called without_mask |",
            "|---|---:|---:|---:|",
        ]
        for view, title in (
            ("crops", "crops (`--crops`)"),
            ("framed", "framed (face at ~1/3 of 640x480)"),
            ("closeup", "close-up (the photo as it is)"),
        ):
            v = p[view]
            found = f"{v['with_mask_found']:.3f}" if "with_mask_found" in v else "—"
            lines.append(
                f"| {title} | {found} | {v['with_mask_called_right']:.3f} | {v['without_mask_called_right']:.3f} |"
            )
    first = next(iter(results["detectors"].values()))
    m = results["machine"]
    lines += [
        "",
        f"maskdet: {ours[0][1]['runtime']} classifier at {ours[0][1]['classifier_input']} px "
        f"(TensorFlow loaded: {'yes' if ours[0][1]['tensorflow_loaded'] else 'no'}); classic: "
        f"{classic['detector']}, MobileNetV2-224 two-class, {classic['runtime']} (or a compiled call). "
        f"{ours[0][1]['frames']} frames per pipeline (1-6 faces), each pipeline in its own process. "
        f"Rendered scenes: recall at IoU 0.5 on {first['faces']} faces ({first['masked_faces']} masked), "
        f"precision over every box found, each detector at its own score threshold (CenterFace 0.3, "
        f"Ultra-Light 0.7, BlazeFace 0.5, res10 0.5). {results['real_note']}. "
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; measured {m['date']} "
        f"with `make bench`.",
    ]
    return "\n".join(lines)


def update_readme(text: str, markers: tuple[str, str] = (MARK_START, MARK_END), root: Path = ROOT) -> Path:
    """Replace what lies between the two ``markers`` with ``text``, in the one
    page that holds them: the README or a page of the documentation site."""
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    holding = [page for page in pages if page.is_file() and markers[0] in page.read_text()]
    if len(holding) != 1:
        raise ValueError(f"{markers[0]}: expected in one page of README.md and docs/, found in {len(holding)}")
    page = holding[0]
    body = page.read_text()
    start, end = body.index(markers[0]) + len(markers[0]), body.index(markers[1])
    tmp = page.with_name(page.name + ".tmp")
    tmp.write_text(body[:start] + "\n" + text + "\n" + body[end:])
    tmp.replace(page)
    return page


def publish(results: dict, out: str | Path, text: str, readme: bool, markers=(MARK_START, MARK_END)) -> None:
    """A benchmark's results to ``out`` (JSON, written whole), its table to
    standard output and, with ``readme``, between ``markers`` in the page that
    holds them (``update_readme``)."""
    from maskdet.io.atomic import write_json_atomic

    write_json_atomic(Path(out), results)
    print(text)
    if readme:
        update_readme(text, markers=markers)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measured_on() -> dict:
    """Where and when a benchmark ran, as its results record it: CPU, cores, date."""
    return {"cpu": _cpu(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="passes over the frames per pipeline (default 3)")
    parser.add_argument(
        "--scenes",
        default=str(ROOT / "data" / "raw" / "sample" / "scenes"),
        help="VOC scenes (images/, annotations/) to make the frames from and to measure recall on",
    )
    parser.add_argument("--model", default=str(ROOT / "models"), help="maskdet model folder (default: models/)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"), help="results JSON")
    parser.add_argument(
        "--readme",
        action="store_true",
        help="also write the table into the documentation (the page holding its markers)",
    )
    parser.add_argument(
        "--real",
        default=None,
        metavar="FOLDER",
        help="real photos, one folder per class, for the real-photo columns (default: "
        "$MASKDET_REAL_PHOTOS, else shared/realdev beside the project if there; '' for none)",
    )
    parser.add_argument("--worker", choices=("maskdet", "classic", "classic_compiled"), help=argparse.SUPPRESS)
    parser.add_argument("--detector", help=argparse.SUPPRESS)
    parser.add_argument("--frames", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(
            json.dumps(
                worker(args.worker, Path(args.frames), Path(args.folder), args.repeats, Path(args.model), args.detector)
            )
        )
        return 0
    scenes = Path(args.scenes)
    if not (Path(args.model) / "metadata.json").is_file():
        print(f"{args.model}: no trained model; run `make repro` first", file=sys.stderr)
        return 2
    if not (scenes / "annotations").is_dir():
        print(
            f"{scenes}: no VOC scenes here; run `make repro` first (it renders the default data's scenes)",
            file=sys.stderr,
        )
        return 2
    results = {}
    real = args.real if args.real is not None else os.environ.get("MASKDET_REAL_PHOTOS")
    photos, results["real_note"] = real_photos(real)
    print(f"benchmark: {results['real_note']}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        frames, folder, faces = make_inputs(scenes, Path(tmp))
        for key, kind, detector in PIPELINES:
            print(f"benchmark: {key} pipeline ...", file=sys.stderr)
            extra = ["--detector", detector] if detector else []
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.bench",
                    "--worker",
                    kind,
                    "--frames",
                    str(frames),
                    "--folder",
                    str(folder),
                    "--repeats",
                    str(args.repeats),
                    "--model",
                    args.model,
                    *extra,
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            results[key] = json.loads(done.stdout.strip().splitlines()[-1])
        print("benchmark: detectors (recall, time) ...", file=sys.stderr)
        results["detectors"] = measure_detectors(scenes, frames, photos)
    if photos:
        print("benchmark: the default Predictor on the real photos ...", file=sys.stderr)
        results["real"] = measure_real_pipeline(Path(args.model), Path(real or DEFAULT_REAL))
    results["faces_per_frame"] = sorted(set(faces.values()))
    results["machine"] = {
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    results["ratio_p50"] = {
        key: results["classic"]["p50_ms"] / results[key]["p50_ms"] for key, kind, _ in PIPELINES if kind == "maskdet"
    }
    results["ratio_p50_compiled"] = {
        key: results["classic_compiled"]["p50_ms"] / results[key]["p50_ms"]
        for key, kind, _ in PIPELINES
        if kind == "maskdet"
    }
    publish(results, args.out, table(results), args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
