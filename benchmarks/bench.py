"""Speed, memory and detection recall of the maskdet Predictor against the
classic res10 SSD + MobileNetV2-224 pipeline, measured in one run.

    python -m benchmarks.bench            (or `make bench`)

Pipelines: the Predictor as params.yaml configures it, the Predictor with
Ultra-Light at its native 640x480 and with BlazeFace, and the classic one.
Each runs in its own process so that its peak memory (RSS) is its own. Frames
are 640x480 JPEGs made from the default data's scenes (3-5 faces), pairs of
scenes side by side (6 faces) and the portraits (1 face); each frame goes
decode -> detect -> classify -> annotate. Throughput is images/s over the
full-size scene and portrait files (decode -> detect -> classify). Then each
detector (Ultra-Light at four input sizes, BlazeFace, res10) is measured alone:
its recall on every rendered scene of the default data, on the faces that
wear a mask (correctly or not) and on bare faces, and its time per frame.
Results go to benchmarks/results.json and, with --readme, into the README.
"""

from __future__ import annotations

import argparse
import json
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

from maskdet.images import letterbox

ROOT = Path(__file__).resolve().parents[1]
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


def _frame(rgb: np.ndarray) -> np.ndarray:
    """A 640x480 frame showing the whole image."""
    return letterbox(rgb, 640, 480)[0]


def make_inputs(scenes_dir: Path, into: Path) -> tuple[Path, Path, dict]:
    """640x480 frames and a folder of full-size images; returns both folders and faces per frame."""
    from maskdet import assets
    from maskdet.images import load_rgb, write_jpeg
    from maskdet.scenes import read_scenes

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


# (results key, worker kind, detector, Ultra-Light input): the Predictor as params.yaml
# configures it, Ultra-Light at its native size, BlazeFace, and the classic pipeline.
PIPELINES = (("maskdet", "maskdet", None, None),
             ("maskdet_ultralight_640x480", "maskdet", "ultralight", "640x480"),
             ("maskdet_blazeface", "maskdet", "blazeface", None),
             ("classic", "classic", None, None))
ULTRALIGHT_SIZES = ((320, 240), (400, 300), (480, 360), (640, 480))


def _size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def worker(kind: str, frames: Path, folder: Path, repeats: int, model: Path, detector: str | None = None,
           ultralight_input: str | None = None) -> dict:
    """Runs in its own process: latency per frame, throughput, peak RSS."""
    started = time.perf_counter()
    if kind == "maskdet":
        from maskdet.images import load_rgb
        from maskdet.params import load_params
        from maskdet.predict import Predictor, annotate

        params = load_params(ROOT / "params.yaml", check_paths=False)
        if ultralight_input:
            predict = params.predict.model_copy(update={"ultralight_input": list(_size(ultralight_input))})
            params = params.model_copy(update={"predict": predict})
        predictor = Predictor.from_params(model, params, detector)

        def frame_step(data: bytes):
            rgb = load_rgb(data)
            annotate(rgb, predictor.faces(rgb))

        def image_step(path: Path):
            predictor.predict(path)

        describe = {"detector": predictor.detector_name, "runtime": predictor.runtime,
                    "classifier_input": predictor.input_size,
                    "detector_input": predictor.detector_input}
    else:
        from benchmarks.classic import ClassicPipeline

        pipeline = ClassicPipeline()

        def decode(data: bytes):
            return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

        def frame_step(data: bytes):
            rgb = decode(data)
            pipeline.annotate(rgb, *pipeline(rgb))

        def image_step(path: Path):
            pipeline(decode(path.read_bytes()))

        describe = {"detector": "res10 SSD 300 (Caffe)", "runtime": "keras model.predict", "classifier_input": 224,
                    "detector_input": "300x300"}
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
    return {**describe, **_percentiles(ms), "images_per_s": throughput, "load_s": load_seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "tensorflow_loaded": "tensorflow" in sys.modules}


def measure_detectors(scenes_dir: Path, frames: Path) -> dict:
    """Each detector's recall on every rendered scene, and its own time on the
    640x480 frames (p50, this process, one after another)."""
    from benchmarks.classic import Res10Detector
    from maskdet.images import load_rgb
    from maskdet.predict import make_detector
    from maskdet.scenes import detection_recall, detection_table, read_scenes

    scenes = read_scenes(scenes_dir)
    detectors = {f"ultralight {w}x{h}": make_detector("ultralight", ultralight_input=(w, h))
                 for w, h in ULTRALIGHT_SIZES}
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
        out[name] = {**detection_recall(detection_table(scenes, detector)), "p50_ms": statistics.median(ms)}
    return out


def table(results: dict) -> str:
    classic = results["classic"]
    ours = [(key, results[key]) for key, kind, _, _ in PIPELINES if kind == "maskdet"]
    titles = {"maskdet": "maskdet (default)", "maskdet_ultralight_640x480": "maskdet, Ultra-Light 640x480",
              "maskdet_blazeface": "maskdet, BlazeFace"}
    rows = [("p50 latency per 640x480 frame (ms)", "p50_ms", "{:.1f}"),
            ("p95 latency per frame (ms)", "p95_ms", "{:.1f}"),
            ("batch throughput, full-size images (images/s)", "images_per_s", "{:.1f}"),
            ("peak memory, RSS (MB)", "peak_rss_mb", "{:.0f}"),
            ("start-up: load models (s)", "load_s", "{:.1f}")]
    lines = ["| | " + " | ".join(titles[k] for k, _ in ours) + " | classic |",
             "|---|" + "---:|" * (len(ours) + 1),
             "| detector, input | " + " | ".join(f"{r['detector']} {r['detector_input']}" for _, r in ours)
             + f" | res10 {classic['detector_input']} |"]
    for title, key, fmt in rows:
        cells = [fmt.format(r[key]) for _, r in ours] + [fmt.format(classic[key])]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    ratios = [(f"**{classic['p50_ms'] / r['p50_ms']:.1f}x**") for _, r in ours]
    lines.append("| **classic p50 / ours** | " + " | ".join(ratios) + " | 1.0x |")
    lines.append("| peak RSS, classic / ours | " + " | ".join(f"{classic['peak_rss_mb'] / r['peak_rss_mb']:.1f}x"
                                                            for _, r in ours) + " | 1.0x |")
    lines += ["", "| detector, input | recall, masked faces | recall, bare faces | recall, all | "
                  "detector alone, p50 per frame (ms) |", "|---|---:|---:|---:|---:|"]
    for name, r in results["detectors"].items():
        lines.append(f"| {name} | {r['recall_masked']:.3f} | {r['recall_unmasked']:.3f} | {r['recall']:.3f} | "
                     f"{r['p50_ms']:.1f} |")
    first = next(iter(results["detectors"].values()))
    m = results["machine"]
    lines += ["", f"maskdet: {ours[0][1]['runtime']} classifier at {ours[0][1]['classifier_input']} px "
                  f"(TensorFlow loaded: {'yes' if ours[0][1]['tensorflow_loaded'] else 'no'}); classic: "
                  f"{classic['detector']}, MobileNetV2-224 two-class, {classic['runtime']}. "
                  f"{ours[0][1]['frames']} frames per pipeline (1-6 faces), each pipeline in its own process. "
                  f"Recall at IoU 0.5 on {first['faces']} faces ({first['masked_faces']} masked) of the rendered "
                  f"scenes, each detector at its own score threshold (Ultra-Light 0.7, BlazeFace 0.5, res10 0.5). "
                  f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; measured {m['date']} "
                  f"with `make bench`."]
    return "\n".join(lines)


def update_readme(text: str, readme: Path = ROOT / "README.md") -> None:
    body = readme.read_text()
    start, end = body.index(MARK_START) + len(MARK_START), body.index(MARK_END)
    tmp = readme.with_name(readme.name + ".tmp")
    tmp.write_text(body[:start] + "\n" + text + "\n" + body[end:])
    tmp.replace(readme)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the frames per pipeline (default 3)")
    parser.add_argument("--scenes", default=str(ROOT / "data" / "raw" / "sample" / "scenes"),
                        help="VOC scenes (images/, annotations/) to make the frames from and to measure recall on")
    parser.add_argument("--model", default=str(ROOT / "models"), help="maskdet model folder (default: models/)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"), help="results JSON")
    parser.add_argument("--readme", action="store_true", help="also write the table into README.md")
    parser.add_argument("--worker", choices=("maskdet", "classic"), help=argparse.SUPPRESS)
    parser.add_argument("--detector", help=argparse.SUPPRESS)
    parser.add_argument("--ultralight-input", help=argparse.SUPPRESS)
    parser.add_argument("--frames", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.frames), Path(args.folder), args.repeats, Path(args.model),
                                args.detector, args.ultralight_input)))
        return 0
    scenes = Path(args.scenes)
    if not (Path(args.model) / "metadata.json").is_file():
        print(f"{args.model}: no trained model; run `make repro` first", file=sys.stderr)
        return 2
    if not (scenes / "annotations").is_dir():
        print(f"{scenes}: no VOC scenes here; run `make repro` first (it renders the default data's scenes)",
              file=sys.stderr)
        return 2
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        frames, folder, faces = make_inputs(scenes, Path(tmp))
        for key, kind, detector, size in PIPELINES:
            print(f"benchmark: {key} pipeline ...", file=sys.stderr)
            extra = (["--detector", detector] if detector else []) + (["--ultralight-input", size] if size else [])
            done = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--worker", kind, "--frames", str(frames),
                                   "--folder", str(folder), "--repeats", str(args.repeats), "--model", args.model,
                                   *extra], cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            results[key] = json.loads(done.stdout.strip().splitlines()[-1])
        print("benchmark: detectors (recall, time) ...", file=sys.stderr)
        results["detectors"] = measure_detectors(scenes, frames)
    results["faces_per_frame"] = sorted(set(faces.values()))
    results["machine"] = {"cpu": _cpu(), "cores": __import__("os").cpu_count(), "python": platform.python_version(),
                          "date": time.strftime("%Y-%m-%d")}
    results["ratio_p50"] = {key: results["classic"]["p50_ms"] / results[key]["p50_ms"]
                            for key, kind, _, _ in PIPELINES if kind == "maskdet"}
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out)
    text = table(results)
    print(text)
    if args.readme:
        update_readme(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
