"""Helpers shared by test modules (fixtures stay in conftest.py). Imported as
``tests.helpers``: pyproject.toml puts the project root on pytest's path, so
plain ``pytest`` and ``python -m pytest`` both find it."""

import io
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from benchmarks.project import copy_project, user_env

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's scripts: papermill, dvc, voila, maskdet


def save(path: Path, rgb: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **kwargs)
    return path


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def zip_bytes(entries: dict, compression=zipfile.ZIP_STORED) -> bytes:
    """A zip archive in memory holding ``entries`` (name -> bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def free_port() -> int:
    """A loopback port nobody listens on, for a server started by a test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def face_crop(rgb: np.ndarray, box, size: int = 128) -> np.ndarray:
    x1, y1, x2, y2 = box
    return cv2.resize(rgb[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_AREA)


def small_data(root: Path, crops_per_class_per_person: int, scene_renders: int = 0):
    """The default data set built small (64-pixel crops, scenes if asked) and prepared: its manifest."""
    from maskdet.data.prepare import prepare
    from maskdet.data.sample import build_sample
    from maskdet.params import SampleParams, parse_params
    from maskdet.study.datasets import read_manifest

    build_sample(
        root / "data" / "raw" / "sample",
        SampleParams(crops_per_class_per_person=crops_per_class_per_person, scene_renders=scene_renders, crop_size=64),
        progress=False,
    )
    prepare(parse_params({"data": {}}), root, progress=False)
    return read_manifest(root)


SMOKE_SAMPLE = {"crops_per_class_per_person": 3, "scene_renders": 1, "crop_size": 96}


def run(cmd, cwd, tracking_uri: str | None = None, output=None, **kw):
    """``cmd`` in ``cwd`` as a user runs it: the venv first on PATH, the project's
    own MLflow store unless ``tracking_uri`` names another (a tracking server).
    ``output``: a file for stdout and stderr instead of capturing them, for a
    command that leaves processes behind (they would hold a captured pipe open,
    and the wait for its end would last as long as they do)."""
    env = user_env(**({"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {}))
    if output is not None:
        return subprocess.run(cmd, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, text=True, env=env, **kw)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, **kw)


def require_system(what: str, found: bool, install: str) -> None:
    """Skip a test whose system program is missing; fail it in CI, where `make
    test` installs it (tools/ensure-system) and a skip would hide the gap."""
    if found:
        return
    message = f"{what} not installed: {install}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# What each `# NBVAL_CHECK_OUTPUT` cell must print, by its last line: the label
# order of docs/architecture.md section 2 (written here, not imported) and the default backbone.
LABEL_ORDER = "('with_mask', 'without_mask', 'mask_weared_incorrect')"
REFERENCE_OUTPUTS = {
    "print(LABELS)": f"{LABEL_ORDER}\n",
    "print(params.model.backbone, LABELS)": f"mobilenetv2 {LABEL_ORDER}\n",
}


def add_reference_outputs(notebook: Path) -> None:
    """Committed notebooks carry no outputs; the copy that nbval checks gets the
    expected output of every `# NBVAL_CHECK_OUTPUT` cell (marked as run: nbval
    rejects an unrun reference cell)."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in source:
            expected = REFERENCE_OUTPUTS[source.strip().splitlines()[-1]]
            cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": [expected]}]
            cell["execution_count"] = 1
    notebook.write_text(json.dumps(nb, indent=1))


def smoke_project(dest: Path, **sections) -> Path:
    """A copy of the project with small data (and any params sections overridden)."""
    project = copy_project(dest)
    for notebook in (project / "notebooks").glob("*.ipynb"):
        add_reference_outputs(notebook)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["sample"].update(SMOKE_SAMPLE)
    for name, values in sections.items():
        params[name].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def run_maskdet(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """``python -m maskdet ARGS`` from the project root, as a user runs it; ``env`` adds variables."""
    return subprocess.run(
        [sys.executable, "-m", "maskdet", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, "MASKDET_ROOT": str(ROOT), **env},
        cwd=ROOT,
    )


def docs_tool():
    """tools/docs.py, the generator of the documentation's reference pages and results blocks, as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_tool", ROOT / "tools" / "docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scene_face(box, label, score=0.9, p=0.9):
    """A Predictor's face: ``label`` with probability ``p``, the rest shared by the other classes."""
    from maskdet import LABELS
    from maskdet.predict.predictor import Face

    probs = dict.fromkeys(LABELS, (1 - p) / 2)
    probs[label] = p
    return Face(box, score, label, probs)
