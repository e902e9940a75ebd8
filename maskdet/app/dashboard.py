"""The Voila dashboard: Upload, Batch, Webcam and Model tabs around one Predictor.

Every callback is wrapped so that an error becomes a message in its tab and
the page keeps working (an exception in a widget callback would otherwise
vanish). The notebook only calls ``dashboard()``.
"""

from __future__ import annotations

import functools
import html
import logging
import os
import time
from pathlib import Path

import ipywidgets as w

from maskdet.app import logic
from maskdet.app.widgets import FilePicker, WebcamWidget
from maskdet.errors import MaskdetError
from maskdet.io.inputs import expand_uploads
from maskdet.predict.tracker import DETECT_EVERY, FaceTracker

log = logging.getLogger(__name__)

CSS = """
<style>
.maskdet-header h2 { margin: 0 0 4px 0; }
.maskdet-note { color: #555; font-size: 0.9em; }
.maskdet-message { padding: 6px 10px; border-radius: 4px; }
.maskdet-message.error { background: #fdecea; color: #922; }
.maskdet-message.ok { background: #eafaf1; color: #145a32; }
table.maskdet-faces, table.maskdet-results, table.maskdet-model, table.maskdet-metrics
  { border-collapse: collapse; margin: 6px 0; font-size: 0.92em; }
.maskdet-faces td, .maskdet-faces th, .maskdet-results td, .maskdet-results th,
.maskdet-model td, .maskdet-model th, .maskdet-metrics td
  { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }
.maskdet-results tr.error-row td { background: #fdecea; }
.maskdet-download { margin-right: 16px; font-weight: 600; }
</style>
"""


def _message(text: str, error: bool = False) -> str:
    return f"<div class='maskdet-message {'error' if error else 'ok'}'>{html.escape(text)}</div>" if text else ""


def _safe(show):
    """Run a callback; on any error, show it through ``show(text)`` instead of losing it."""

    def wrap(func):
        @functools.wraps(func)
        def run(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                log.exception("dashboard callback %s failed", func.__name__)
                show(
                    f"Something went wrong ({type(exc).__name__}: {exc}). The dashboard is still working; "
                    "try another file."
                )

        return run

    return wrap


def _picker(on_files, **kwargs) -> FilePicker:
    """A FilePicker whose refusals (too large) show in ``message``."""
    return FilePicker(on_files=on_files, limit_bytes=logic.UPLOAD_LIMIT_MB * 1024 * 1024, **kwargs)


def upload_tab(predictor) -> w.Widget:
    message, verdict, table = w.HTML(), w.HTML(), w.HTML()
    picture = w.Image(format="jpeg", layout=w.Layout(max_width="900px"))
    picture.layout.display = "none"

    def show_error(text):
        message.value = _message(text, error=True)
        picture.layout.display = "none"
        verdict.value, table.value = "", ""

    @_safe(show_error)
    def on_files(files):
        if not files:
            return
        name, data = files[-1]
        if not data:
            show_error(f"{name} is empty (0 bytes): choose an image file.")
            return
        result = logic.analyse(predictor, data, name)
        pred = result.prediction
        if pred.error:
            show_error(logic.verdict(pred))
            return
        message.value = _message(f"{name}: {pred.width} x {pred.height} px, {pred.ms:.0f} ms")
        picture.value = result.annotated
        picture.layout.display = ""
        verdict.value = f"<p class='maskdet-verdict'><b>{html.escape(logic.verdict(pred))}</b></p>"
        table.value = logic.faces_table(pred)

    picker = _picker(on_files, description="Choose an image", accept="image/*")
    picker.observe(lambda change: show_error(change["new"]), names="rejected")
    intro = w.HTML(
        "<p>One photo: every face is found, boxed in its class colour and classified. JPEG, PNG, WebP or BMP.</p>"
    )
    examples = []
    for i, photo in enumerate(logic.example_photos(), start=1):
        button = w.Button(description=f"Example photo {i}", tooltip=f"{photo.name}, from the built-in data set")
        button.on_click(lambda _, photo=photo: on_files([(photo.name, photo.read_bytes())]))
        examples.append(button)
    row = [picker, w.HTML("&nbsp;or try&nbsp;"), *examples] if examples else [picker]
    return w.VBox([intro, w.HBox(row), message, verdict, picture, table])


def batch_tab(predictor) -> w.Widget:
    progress = w.IntProgress(value=0, min=0, max=1, description="0 / 0", layout=w.Layout(width="60%"))
    message, downloads, table = w.HTML(), w.HTML(), w.HTML()
    chart = w.Image(format="png")
    chart.layout.display = "none"
    gallery = w.GridBox(layout=w.Layout(grid_template_columns="repeat(auto-fill, 170px)", grid_gap="6px"))
    sort_by = w.Dropdown(options=list(logic.SORTABLE), value="image", description="Sort by")
    descending = w.Checkbox(value=False, description="descending", indent=False)
    state = {"frame": logic.results_frame([])}

    def show_error(text):
        message.value = _message(text, error=True)

    def render_table(*_):
        table.value = logic.results_table(state["frame"], sort_by.value, descending.value)

    @_safe(show_error)
    def on_files(files):
        if not files:
            return
        items = list(expand_uploads(files))
        progress.max, progress.value = max(1, len(items)), 0
        progress.description = f"0 / {len(items)}"
        message.value, gallery.children, predictions = "", (), []
        tiles = []
        for name, data, error in items:
            if error is None:
                result = logic.analyse(predictor, data, name, thumb=True)
            else:
                result = logic.Analysed(logic.Prediction(image=name, error=error))
            pred = result.prediction
            predictions.append(pred)
            caption = (
                f"<span style='color:#922'>{html.escape(pred.error.split(':')[0])}</span>"
                if pred.error
                else f"{len(pred.faces)} face(s)"
            )
            if result.thumb:
                tiles.append(
                    w.VBox(
                        [
                            w.Image(value=result.thumb, format="jpeg"),
                            w.HTML(f"<small>{html.escape(name[-40:])}<br>{caption}</small>"),
                        ]
                    )
                )
            progress.value += 1
            progress.description = f"{progress.value} / {len(items)}"
        gallery.children = tiles
        state["frame"] = logic.results_frame(predictions)
        render_table()
        chart.value = logic.summary_chart(predictions)
        chart.layout.display = ""
        downloads.value = logic.download_link(
            logic.results_csv(predictions), "maskdet-results.csv", "text/csv", "Download CSV"
        ) + logic.download_link(
            logic.results_json(predictions), "maskdet-results.json", "application/json", "Download JSON"
        )
        failed = sum(p.error is not None for p in predictions)
        faces = sum(len(p.faces) for p in predictions)
        text = f"{len(predictions)} image(s), {faces} face(s)" + (
            f"; {failed} could not be read (red rows)" if failed else ""
        )
        message.value = _message(text, error=False)

    picker = _picker(on_files, description="Choose images or a zip", accept="image/*,.zip", multiple=True)
    picker.observe(lambda change: show_error(change["new"]), names="rejected")
    sort_by.observe(_safe(show_error)(render_table), names="value")
    descending.observe(_safe(show_error)(render_table), names="value")
    intro = w.HTML(
        "<p>Many photos at once, or a zip of them: a gallery of annotated thumbnails, a results "
        "table you can sort, a chart per class, and the results as CSV or JSON (the schema of "
        "<code>maskdet predict</code>).</p>"
    )
    return w.VBox([intro, picker, progress, message, downloads, chart, w.HBox([sort_by, descending]), table, gallery])


def webcam_tab(predictor) -> w.Widget:
    """The live camera, with a choice of detector: the Predictor's own (chosen
    for recall on masked faces) or BlazeFace (several times faster)."""
    fast = {}  # the BlazeFace twin, made on first use; it shares the classifier

    def current():
        if detector.value == predictor.detector_name:
            return predictor
        if "predictor" not in fast:
            fast["predictor"] = predictor.with_detector("blazeface")
        return fast["predictor"]

    detector = w.ToggleButtons(
        options=list(dict.fromkeys([predictor.detector_name, "blazeface"])),
        value=predictor.detector_name,
        description="Detector",
        tooltips=["the project's detector", "fastest (lower recall on masked faces)"],
    )
    # one tracker for the page: frames come one message at a time, in order, at
    # the pace the browser and the server manage, so tracks expire by the wall clock
    tracker = FaceTracker(detect_every=DETECT_EVERY, clock=time.monotonic)
    camera = WebcamWidget(on_frame=lambda jpeg: logic.frame_answer(current(), jpeg, tracker))
    intro = w.HTML(
        "<p>Your camera, live: each frame goes to the model and comes back annotated; the next frame "
        "is sent while the model works on the last, never more than two unanswered. The browser asks "
        "for permission; the camera works on localhost or over HTTPS only. Each face is followed from "
        "frame to frame: its box carries its track id and a label decided over its last frames, and "
        "the people seen so far are counted once each. BlazeFace is the faster "
        f"detector; {predictor.detector_name} finds more masked faces (the docs' Predicting page measures both).</p>"
    )
    return w.VBox([intro, detector, camera])


def model_tab(predictor) -> w.Widget:
    """The loaded model's card; its metrics and confusion matrix come from its own
    evaluation run in MLflow, never from the working tree's reports/."""
    record = logic.model_record(predictor.metadata.get("mlflow_run_id"))
    parts = [w.HTML(logic.model_card(predictor, record))]
    confusion = logic.evaluation_figure(record)
    if confusion is not None:
        parts += [
            w.HTML("<h4>Confusion matrix (test split)</h4>"),
            w.Image(value=confusion, format="png", layout=w.Layout(max_width="520px")),
        ]
    return w.VBox(parts)


def load_predictor(model: str | Path | None = None):
    """The model named by ``model``, ``$MASKDET_MODEL``, or the project's models/; params.yaml's predict section."""
    from maskdet.params import load_params
    from maskdet.paths import project_root
    from maskdet.predict.predictor import Predictor

    root = project_root()
    chosen = model or os.environ.get("MASKDET_MODEL") or root / "models"
    # MLflow's download bar would print into the page every visitor opens.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return Predictor(chosen, load_params(root / "params.yaml", check_paths=False).predict), root


def dashboard(model: str | Path | None = None) -> w.Widget:
    """The whole app. A missing model gives a page that says how to make one."""
    try:
        predictor, root = load_predictor(model)
    except MaskdetError as exc:
        return w.HTML(
            CSS
            + _message(
                f"No model to serve: {exc}. Run `make repro` to train one, or set "
                "MASKDET_MODEL to a model folder or an MLflow URI.",
                error=True,
            )
        )
    header = w.HTML(
        CSS + "<div class='maskdet-header'><h2>maskdet: face-mask detection</h2>"
        "<div class='maskdet-note'>Every face is classified as <b>with_mask</b>, <b>without_mask</b> "
        f"or <b>mask_weared_incorrect</b>. Uploads: up to {logic.UPLOAD_LIMIT_MB} MB per selection "
        "(images or zip archives). Model: "
        f"<code>{html.escape(predictor.model_name)}</code>, {predictor.runtime} runtime, "
        f"{predictor.detector_name} detector.</div></div>"
    )
    tabs = w.Tab(children=[upload_tab(predictor), batch_tab(predictor), webcam_tab(predictor), model_tab(predictor)])
    for i, title in enumerate(("Upload", "Batch", "Webcam", "Model")):
        tabs.set_title(i, title)
    return w.VBox([header, tabs])
