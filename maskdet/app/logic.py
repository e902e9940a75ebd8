"""What the dashboard computes, apart from its widgets: each function takes
bytes or Predictions and returns bytes, text or tables, so that the callback
tests run without a browser and the widgets stay thin."""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from maskdet import INCORRECT, LABELS
from maskdet.io.images import ImageError, encode_jpeg, load_rgb
from maskdet.predict.drawing import HEX_COLOURS, annotate
from maskdet.predict.frames import process_frame
from maskdet.predict.model_info import model_info
from maskdet.predict.predictor import CSV_HEADER, Prediction, Predictor, csv_writer
from maskdet.predict.tracker import FaceTracker

UPLOAD_LIMIT_MB = 20  # per selection; voila.json lets the websocket carry a little more
THUMBNAIL = 160


def thumbnail(rgb: np.ndarray, side: int = THUMBNAIL) -> bytes:
    import cv2

    scale = side / max(rgb.shape[:2])
    small = cv2.resize(
        rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))), interpolation=cv2.INTER_AREA
    )
    return encode_jpeg(small, 80)


@dataclass
class Analysed:
    """One image through the Predictor: the answer and, when it could be read, the annotated picture."""

    prediction: Prediction
    annotated: bytes | None = None  # JPEG
    thumb: bytes | None = None  # JPEG


def analyse(predictor: Predictor, data: bytes, name: str, thumb: bool = False) -> Analysed:
    """Never raises for a bad image: its reason is in ``prediction.error``."""
    try:
        rgb = load_rgb(data, name=name)
    except ImageError as exc:
        return Analysed(Prediction(image=name, error=f"{exc.reason}: {exc}"))
    pred = predictor.predict(rgb, name=name)
    shown = annotate(rgb, pred.faces)
    return Analysed(pred, encode_jpeg(shown, 85), thumbnail(shown) if thumb else None)


def example_photos(limit: int = 2) -> list[Path]:
    """Group photos of the built-in set (``maskdet sample``), one per source photo, for a
    visitor with no photo at hand; none where the set has not been built."""
    from maskdet.paths import SAMPLE_DATA, resolve

    folder = resolve(SAMPLE_DATA) / "scenes" / "images"
    photos = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    chosen, sources = [], set()
    for photo in photos:
        source = photo.stem.rsplit("_", 1)[0]  # faceapi-sample1_r2 -> faceapi-sample1
        if source not in sources:
            sources.add(source)
            chosen.append(photo)
    return chosen[:limit]


def verdict(pred: Prediction) -> str:
    """One line for people."""
    if pred.error:
        return f"Could not read {pred.image}: {pred.error}"
    if not pred.faces:
        return "No face found. Try a sharper or closer photo."
    counts = Counter(f.label for f in pred.faces)
    parts = [f"{counts[k]} {k}" for k in LABELS if counts[k]]
    noun = "face" if len(pred.faces) == 1 else "faces"
    if counts["with_mask"] == len(pred.faces):
        advice = "everyone wears a mask"
    elif counts["without_mask"] == len(pred.faces):
        advice = "nobody wears a mask"
    elif counts["without_mask"] and counts["mask_weared_incorrect"]:
        advice = "some wear no mask, some wear it wrongly"
    elif counts["without_mask"]:
        advice = "not everyone wears a mask"
    else:
        advice = "not everyone wears a mask correctly"
    return f"{len(pred.faces)} {noun}: {', '.join(parts)} - {advice}."


def faces_table(pred: Prediction) -> str:
    """The faces of one image as an HTML table (label in its class colour)."""
    if not pred.faces:
        return ""
    rows = []
    for i, f in enumerate(pred.faces, 1):
        colour = HEX_COLOURS[f.label]
        rows.append(
            f"<tr><td>{i}</td><td style='color:{colour};font-weight:600'>{f.label}</td>"
            f"<td>{f.probs[f.label]:.1%}</td><td>{list(f.box)}</td><td>{f.score:.2f}</td></tr>"
        )
    return (
        "<table class='maskdet-faces'><thead><tr><th>#</th><th>label</th><th>confidence</th><th>box</th>"
        "<th>detector score</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def results_frame(predictions: list[Prediction]) -> pd.DataFrame:
    """One row per face (one per image without faces), the CLI's CSV columns."""
    frame = pd.DataFrame([row for p in predictions for row in p.csv_rows()], columns=CSV_HEADER)
    probs = [f"p_{k}" for k in LABELS]
    for column in ["width", "height", "ms", "face", "x1", "y1", "x2", "y2", "score", *probs]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["confidence"] = frame[probs].max(axis=1)  # the label's probability; NaN without a face
    return frame


def results_csv(predictions: list[Prediction]) -> bytes:
    buf = io.StringIO()
    write = csv_writer(buf)
    for p in predictions:
        write(p)
    return buf.getvalue().encode()


def results_json(predictions: list[Prediction]) -> bytes:
    return json.dumps([p.to_dict() for p in predictions], indent=1).encode()


def download_link(data: bytes, filename: str, mime: str, text: str) -> str:
    href = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return f"<a download='{html.escape(filename)}' href='{href}' class='maskdet-download'>{html.escape(text)}</a>"


SORTABLE = {
    "image": "image",
    "label": "label",
    "confidence": "confidence",
    "detector score": "score",
    "time (ms)": "ms",
    "error": "error",
}


def results_table(frame: pd.DataFrame, sort_by: str = "image", descending: bool = False) -> str:
    """The batch results as an HTML table, sorted by one of ``SORTABLE``."""
    if frame.empty:
        return "<p>No results yet.</p>"
    column = SORTABLE[sort_by]
    shown = frame.sort_values(column, ascending=not descending, na_position="last", kind="stable")
    rows = []
    for r in shown.itertuples(index=False):
        cls = " class='error-row'" if r.error else ""
        label = f"<span style='color:{HEX_COLOURS[r.label]};font-weight:600'>{r.label}</span>" if r.label else ""
        conf = f"{r.confidence:.1%}" if pd.notna(r.confidence) else ""
        score = f"{r.score:.2f}" if pd.notna(r.score) else ""
        box = f"[{r.x1:.0f}, {r.y1:.0f}, {r.x2:.0f}, {r.y2:.0f}]" if r.label else ""
        rows.append(
            f"<tr{cls}><td>{html.escape(str(r.image))}</td><td>{label}</td><td>{conf}</td><td>{box}</td>"
            f"<td>{score}</td><td>{r.ms}</td><td>{html.escape(str(r.error))}</td></tr>"
        )
    return (
        "<table class='maskdet-results'><thead><tr><th>image</th><th>label</th><th>confidence</th><th>box</th>"
        "<th>detector score</th><th>ms</th><th>error</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def summary_chart(predictions: list[Prediction]) -> bytes:
    """Faces per class (and unreadable images) as a PNG bar chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = Counter(f.label for p in predictions for f in p.faces)
    names = list(LABELS) + ["unreadable"]
    values = [counts[k] for k in LABELS] + [sum(p.error is not None for p in predictions)]
    colours = [HEX_COLOURS[k] for k in LABELS] + ["#7f8c8d"]
    fig, ax = plt.subplots(figsize=(6, 2.6))
    bars = ax.barh(names[::-1], values[::-1], color=colours[::-1])
    ax.bar_label(bars, padding=3)
    ax.set(xlabel="faces (unreadable: images)", title=f"{len(predictions)} images")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def frame_answer(predictor: Predictor, jpeg: bytes, tracker: FaceTracker | None = None) -> tuple[bytes, dict]:
    """One webcam frame: the annotated JPEG and what the page shows beside it
    (with a tracker: the faces' track ids and the people counted so far)."""
    import time

    started = time.perf_counter()
    frame = process_frame(predictor, load_rgb(jpeg), tracker)
    out = encode_jpeg(frame.annotated, 80)
    info = {
        "counts": {k: frame.counts[k] for k in LABELS},
        "faces": len(frame.faces),
        "labels": [f.label for f in frame.faces],
        "server_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    if tracker is not None:
        info |= {"ids": frame.ids, "people": tracker.counts()}
    return out, info


@dataclass
class ModelRecord:
    """What MLflow knows of one trained model: its registry entry, and the
    metrics and figures of the evaluation that registered it."""

    line: str  # "maskdet version N, alias champion", or a note saying why there is none
    metrics: dict
    evaluation_run_id: str | None = None


def model_record(train_run_id: str | None) -> ModelRecord:
    """The registered Predictor built on this training run (its newest version)
    and its evaluation run's metrics, from the project's MLflow store. Never a
    file of the working tree: it may belong to another model."""
    if not train_run_id:
        return ModelRecord("not registered (no training run recorded)", {})
    try:
        import mlflow

        from maskdet.paths import tracking_uri
        from maskdet.study.registry import REGISTERED_MODEL

        client = mlflow.MlflowClient(tracking_uri=tracking_uri())
        versions = client.search_model_versions(f"name='{REGISTERED_MODEL}' and tag.train_run_id='{train_run_id}'")
        if not versions:
            return ModelRecord("not registered yet (the evaluation stage registers it)", {})
        # search_model_versions leaves the aliases out (MLflow 3.17); get_model_version has them
        latest = client.get_model_version(REGISTERED_MODEL, max(versions, key=lambda v: int(v.version)).version)
        metrics = client.get_run(latest.run_id).data.metrics if latest.run_id else {}
    except Exception as exc:  # no store, or an old one: the card still shows everything else
        return ModelRecord(f"registry not available ({type(exc).__name__})", {})
    aliases = f", alias {', '.join(latest.aliases)}" if latest.aliases else ""
    return ModelRecord(f"maskdet version {latest.version}{aliases}", dict(metrics), latest.run_id)


def evaluation_figure(record: ModelRecord, name: str = "confusion_counts.png") -> bytes | None:
    """A figure the model's own evaluation logged (figures/<name>), or None."""
    if not record.evaluation_run_id:
        return None
    import tempfile

    import mlflow

    from maskdet.paths import tracking_uri

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.MlflowClient(tracking_uri=tracking_uri()).download_artifacts(
                record.evaluation_run_id, f"figures/{name}", tmp
            )
            return Path(path).read_bytes()
    except Exception:  # not logged, or the artifact store is gone: the card goes without it
        return None


def _prior_line(predictor) -> str:
    """The class prior the Predictor's probabilities are for (``predict.prior``)."""
    trained = f"{predictor.trained_prior[INCORRECT]:.0%} in training"
    if predictor.incorrect_share is None:
        return f"the classifier's own probabilities ({trained} wear the mask incorrectly)"
    return (
        f"{predictor.incorrect_share:.0%} of faces with a mask worn incorrectly ({trained}; "
        "predict.incorrect_share in params.yaml)"
    )


def _runtime_line(runtime: str, serving: dict) -> str:
    if runtime == "keras":
        return "Keras model (no TFLite export passed parity)" if serving else "Keras model"
    tol = serving.get("tolerance", {})
    return (
        f"{runtime} TFLite export, fastest to pass parity with the Keras model (every probability within "
        f"{tol.get('max_abs_diff', '?')}, labels equal on at least {tol.get('min_label_agreement', 0):.0%})"
    )


def _detector_line(predictor: Predictor) -> str:
    photo = predictor.settings.photo
    line = (
        f"{predictor.detector_name}: photos seen at {photo.scale:g}x their size (faces from {photo.min_face} px), "
        f"webcam frames at {predictor.detector_input} (faces from {predictor.settings.min_face} px)"
    )
    correction = predictor.box_correction
    if correction is not None and correction.detector == predictor.detector_name:
        line += f"; boxes in the annotators' shape (fitted on {correction.pairs} faces of its training photos)"
    return line


def model_card(predictor: Predictor, record: ModelRecord) -> str:
    """Which model is loaded, how it was trained and how its own evaluation
    scored it (``record``: ``model_record`` of its training run)."""
    meta = predictor.metadata
    metrics = record.metrics
    from maskdet.study.metrics import HEADLINE_METRICS

    rows = "".join(
        f"<tr><td>{k}</td><td>{metrics[k]:.4f}</td></tr>"
        for k in HEADLINE_METRICS
        if isinstance(metrics.get(k), (int, float))
    )
    params = meta.get("params", {})
    train = {k: v for k, v in params.get("train", {}).items() if k != "augment"}
    serving = meta.get("serving", {})
    # the facts `maskdet serve` answers on /model-info, from the same function
    facts = model_info(predictor)
    trained = facts["training"]
    classifier = facts["classifier"]
    items = [
        ("model", html.escape(facts["model"])),
        ("registered as", html.escape(record.line)),
        ("MLflow training run", html.escape(str(trained["mlflow_run_id"] or "-"))),
        ("labels, in output order", ", ".join(classifier["labels"])),
        ("input size", f"{classifier['input_size']} x {classifier['input_size']} RGB"),
        ("backbone", html.escape(str(classifier["backbone"] or "-"))),
        ("classifier runtime", _runtime_line(classifier["runtime"], serving)),
        ("detector", _detector_line(predictor)),
        ("answers for", _prior_line(predictor)),
        ("best epoch", f"{trained['best_epoch'] or '-'} (val loss {meta.get('best_val_loss', float('nan')):.4f})"),
        ("training params", html.escape(json.dumps(train))),
        ("commit", html.escape(str(trained["git_commit"] or "-"))),
        ("params sha256", html.escape(str(trained["params_sha256"] or "-"))),
    ]
    info = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in items)
    scores = (
        f"<h4>Test metrics (its evaluation: MLflow run {html.escape(str(record.evaluation_run_id))})</h4>"
        f"<table class='maskdet-metrics'>{rows}</table>"
        if rows
        else "<p>No evaluation of this model is recorded in MLflow: <code>make repro</code> evaluates and "
        "registers it.</p>"
    )
    return f"<table class='maskdet-model'>{info}</table>{scores}"
