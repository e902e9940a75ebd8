import numpy as np
import pytest

from maskdet.io import assets
from maskdet.io.images import load_rgb
from tests.helpers import small_data

# The longest test files, longest first (`pytest --durations` on 2 cores). `make
# test` hands whole files to one worker per core; started first, they run beside
# the many short files instead of alone at the end.
LONGEST_FIRST = (
    "test_study.py",
    "test_notebooks.py",
    "test_bench.py",
    "test_pipeline.py",
    "test_train.py",
    "test_crosseval.py",
    "test_dashboard_browser.py",
    "test_app.py",
    "test_spark.py",
)


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


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A real small_cnn trained one epoch on small real data, saved as training
    saves it (with its TFLite exports): (project root, model folder, manifest).
    The root also holds the rendered scenes (data/raw/sample/scenes)."""
    from maskdet.params import parse_params
    from maskdet.study.datasets import load_crops
    from maskdet.study.export import build_exports
    from maskdet.study.train import save_model, train_classifier

    root = tmp_path_factory.mktemp("tiny")
    frame = small_data(root, crops_per_class_per_person=1, scene_renders=1)
    params = parse_params(
        {
            "model": {"backbone": "small_cnn", "input_size": 48},
            "train": {"epochs": 1, "fine_tune_epochs": 0, "early_stopping_patience": 0},
        }
    )
    result = train_classifier(frame[frame["split"] == "train"], frame[frame["split"] == "val"], params)
    val = frame[frame["split"] == "val"]
    exports, serving = build_exports(result.model, load_crops(val["file"], 48))
    folder = save_model(result, root / "models", params, {}, exports, {"serving": serving})
    return root, folder, frame
