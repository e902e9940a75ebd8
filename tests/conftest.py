import io
import shutil
import socket
import subprocess
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from maskdet.io import assets
from maskdet.io.images import load_rgb

ROOT = Path(__file__).resolve().parents[1]

# The longest test files, longest first (`pytest --durations` on 2 cores). `make
# test` hands whole files to one worker per core; started first, they run beside
# the many short files instead of alone at the end.
LONGEST_FIRST = ("test_study.py", "test_notebooks.py", "test_bench.py", "test_pipeline.py", "test_train.py",
                 "test_crosseval.py", "test_dashboard_browser.py", "test_app.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file stays


@pytest.fixture(scope="session")
def face_rgb() -> np.ndarray:
    """A real portrait (public domain, from the pinned face-recognition sdist)."""
    return load_rgb(assets.extract(assets.PORTRAIT_PHOTOS[0]))


@pytest.fixture(scope="session")
def group_rgb() -> np.ndarray:
    """A real group photo with three faces (face-api demo, MIT)."""
    return load_rgb(assets.extract(assets.FACE_API_PHOTOS[0]))


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


def copy_project(dest: Path) -> Path:
    """The tracked files of this checkout (with uncommitted edits) in a new git repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def small_data(root: Path, crops_per_class_per_person: int, scene_renders: int = 0):
    """The default data set built small (64-pixel crops, scenes if asked) and prepared: its manifest."""
    from maskdet.study.datasets import read_manifest
    from maskdet.params import SampleParams, parse_params
    from maskdet.data.prepare import prepare
    from maskdet.data.sample import build_sample

    build_sample(root / "data" / "raw" / "sample",
                 SampleParams(crops_per_class_per_person=crops_per_class_per_person, scene_renders=scene_renders,
                              crop_size=64),
                 progress=False)
    prepare(parse_params({"data": {}}), root, progress=False)
    return read_manifest(root)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A real small_cnn trained one epoch on small real data, saved as training
    saves it (with its TFLite exports): (project root, model folder, manifest).
    The root also holds the rendered scenes (data/raw/sample/scenes)."""
    from maskdet.study.export import build_exports
    from maskdet.study.datasets import load_crops
    from maskdet.params import parse_params
    from maskdet.study.train import save_model, train_classifier

    root = tmp_path_factory.mktemp("tiny")
    frame = small_data(root, crops_per_class_per_person=1, scene_renders=1)
    params = parse_params({"model": {"backbone": "small_cnn", "input_size": 48},
                           "train": {"epochs": 1, "fine_tune_epochs": 0, "early_stopping_patience": 0}})
    result = train_classifier(frame[frame["split"] == "train"], frame[frame["split"] == "val"], params)
    val = frame[frame["split"] == "val"]
    exports, serving = build_exports(result.model, load_crops(val["file"], 48))
    folder = save_model(result, root / "models", params, {}, exports, {"serving": serving})
    return root, folder, frame
