"""Real TensorFlow training on small real data: determinism, saving, the offline ImageNet base."""

import h5py
import numpy as np
import pandas as pd
import pytest

from maskdet.io import assets
from maskdet.params import parse_params
from maskdet.study.datasets import class_weights, load_crops
from maskdet.study.loso import predict_probs, style_subset, styles_to_hold_out
from maskdet.study.model import CLASSIC_CLASSIFIER, load_imagenet_base_weights
from maskdet.study.train import load_model, save_model, train_classifier
from tests.helpers import small_data

pytestmark = pytest.mark.slow
TINY = {
    "model": {"input_size": 48},
    "train": {"epochs": 1, "fine_tune_epochs": 1, "batch_size": 32, "early_stopping_patience": 0},
}


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return small_data(tmp_path_factory.mktemp("data"), crops_per_class_per_person=2)


def _split(frame, name):
    return frame[frame["split"] == name]


def test_same_seed_same_data_same_metrics(frame):
    params = parse_params(TINY)
    a = train_classifier(_split(frame, "train"), _split(frame, "val"), params)
    b = train_classifier(_split(frame, "train"), _split(frame, "val"), params)
    cols = ["loss", "accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols])
    crops = load_crops(_split(frame, "test")["file"], 48)
    np.testing.assert_array_equal(predict_probs(a.model, crops), predict_probs(b.model, crops))
    assert list(a.history["phase"]) == ["frozen", "fine_tune"]


def test_frozen_phase_validation_from_cached_features_is_the_models_own(frame):
    """The frozen phase scores the validation crops on the base's features computed
    once: the loss and accuracy it logs for the kept epoch must be the returned
    model's own, run whole over the validation crops as training reads them."""
    from maskdet.study.datasets import image_dataset

    one = {"epochs": 3, "fine_tune_epochs": 0, "average_epochs": 1}  # the best epoch's own weights
    params = parse_params({**TINY, "train": {**TINY["train"], **one}})
    val = _split(frame, "val")
    result = train_classifier(_split(frame, "train"), val, params)
    probs = np.concatenate(
        [np.asarray(result.model.predict_on_batch(x)) for x, _ in image_dataset(val["file"], val["y"], 48, 32)]
    )
    y = val["y"].to_numpy()
    best = result.history[result.history["best"]].iloc[0]
    assert len(result.history) == 3 and result.history["val_loss"].nunique() == 3  # a new score each epoch
    assert "kept" not in result.history  # one epoch kept: the history a training writes as it was
    assert best["val_loss"] == pytest.approx(-np.mean(np.log(probs[np.arange(len(y)), y])), abs=1e-5)
    assert best["val_accuracy"] == pytest.approx(np.mean(probs.argmax(axis=1) == y))


def test_the_kept_weights_are_the_mean_of_the_epochs_with_the_lowest_validation_losses():
    """The callback behind train.average_epochs, fed four epochs' weights and losses."""
    import keras

    from maskdet.study.train import _best_weights

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    callback = _best_weights(model, 2)
    assert callback.weights is None  # nothing seen yet
    for epoch, (fill, loss) in enumerate([(1.0, 0.5), (2.0, 0.2), (3.0, 0.9), (6.0, 0.3)]):
        model.set_weights([np.full(w.shape, fill, w.dtype) for w in model.get_weights()])
        callback.on_epoch_end(epoch, {"val_loss": loss})
    assert callback.epochs == [2, 4]  # history's numbering, from 1
    for layer in callback.weights:
        np.testing.assert_array_equal(layer, np.full(layer.shape, 4.0))  # (2 + 6) / 2
        assert layer.dtype == np.float32


def test_the_history_marks_the_epochs_averaged_and_the_metadata_lists_them(frame, tmp_path):
    small = {"input_size": 48, "backbone": "small_cnn"}  # seconds, not a MobileNetV2 per epoch
    params = parse_params({"model": small, "train": {**TINY["train"], "epochs": 3, "average_epochs": 2}})
    result = train_classifier(_split(frame, "train"), _split(frame, "val"), params)
    lowest = result.history.nsmallest(2, "val_loss")["epoch"].sort_values().tolist()
    assert result.history.loc[result.history["kept"], "epoch"].tolist() == lowest
    save_model(result, tmp_path / "models", params, {})
    _, meta = load_model(tmp_path / "models")
    assert meta["kept_epochs"] == lowest and meta["best_epoch"] in lowest


def test_the_history_caption_names_the_epochs_kept():
    from maskdet.stages.train import _kept_phrase

    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "best": [False, True, False, False]})
    assert _kept_phrase(history) == "epoch 2, the lowest validation loss, whose weights are kept"
    history["kept"] = [False, True, True, True]
    assert _kept_phrase(history) == "epochs 2, 3 and 4, the 3 lowest validation losses, whose weights' mean is kept"


def test_saved_model_round_trips_with_its_metadata(frame, tmp_path):
    params = parse_params({**TINY, "model": {"input_size": 48, "backbone": "small_cnn"}})
    result = train_classifier(_split(frame, "train"), _split(frame, "val"), params)
    save_model(result, tmp_path / "models", params, {"git_commit": "abc", "data_sha256": "def"})
    model, meta = load_model(tmp_path / "models")
    assert meta["labels"] == ["with_mask", "without_mask", "mask_weared_incorrect"]
    assert meta["input_size"] == 48 and meta["backbone"] == "small_cnn" and meta["git_commit"] == "abc"
    assert meta["replicas"] == 1 and meta["global_batch_size"] == 32  # train.strategy default: one device
    crops = load_crops(_split(frame, "test")["file"], 48)
    np.testing.assert_allclose(predict_probs(model, crops), predict_probs(result.model, crops), atol=1e-6)
    assert not list(tmp_path.glob("models.*"))  # no temporary folder left behind


def test_imagenet_base_comes_whole_from_the_offline_file():
    import keras

    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None)
    copied = load_imagenet_base_weights(base)
    assert copied == sum(1 for layer in base.layers if layer.weights)
    with h5py.File(assets.extract(CLASSIC_CLASSIFIER), "r") as f:
        stored = np.asarray(f["model_weights"]["block_16_project"]["block_16_project"]["kernel:0"])
    np.testing.assert_array_equal(base.get_layer("block_16_project").get_weights()[0], stored)


def test_class_weights_are_inverse_frequency():
    w = class_weights(np.array([0, 0, 0, 1]), num_classes=3)
    assert w[0] == pytest.approx(4 / (2 * 3)) and w[1] == pytest.approx(4 / 2) and w[2] == 1.0


def test_leave_one_style_out_subsets():
    frame = pd.DataFrame(
        {
            "label": ["with_mask", "mask_weared_incorrect", "without_mask", "with_mask"] * 3,
            "style": ["cloth", "kn95", "none", "kn95"] * 3,
            "split": ["train"] * 4 + ["val"] * 4 + ["test"] * 4,
        }
    )
    assert styles_to_hold_out(frame) == ["cloth", "kn95"]
    held = style_subset(frame, "kn95", keep=False)
    assert set(held["style"]) == {"cloth", "none"}
    only = style_subset(frame, "kn95", keep=True)
    assert set(only["style"]) == {"kn95", "none"}


def test_web_photo_look_casts_greys_and_repeats_for_a_seed():
    import tensorflow as tf

    from maskdet.params import AugmentParams
    from maskdet.study.datasets import web_photo_look

    grey = tf.fill([32, 32, 3], 120.0)
    seed = tf.constant([3, 7], tf.int32)
    none = AugmentParams(colour_cast=0, grayscale=0, blur=0, jpeg=0)
    assert np.allclose(web_photo_look(grey, none, seed).numpy(), 120.0)
    cast = web_photo_look(grey, AugmentParams(colour_cast=0.3, grayscale=0, blur=0, jpeg=0), seed).numpy()
    gains = cast[0, 0] / 120.0
    assert np.all(np.abs(gains - 1) <= 0.3 + 1e-6) and np.ptp(gains) > 0.01  # a cast: channels differ
    colour = tf.constant(np.random.default_rng(0).uniform(0, 255, (32, 32, 3)), tf.float32)
    greyed = web_photo_look(colour, AugmentParams(colour_cast=0, grayscale=1.0, blur=0, jpeg=0), seed).numpy()
    assert np.allclose(greyed[..., 0], greyed[..., 1]) and np.allclose(greyed[..., 1], greyed[..., 2])
    full = AugmentParams()
    a, b = (web_photo_look(colour, full, seed).numpy() for _ in range(2))
    assert np.array_equal(a, b) and 0 <= a.min() and a.max() <= 255


def test_zoom_in_cuts_the_face_tight_and_zoom_out_frames_it_loose():
    """Real crops come cut at the brows and the lips: zoom_in enlarges what is in
    the middle, up to 1 / (1 - zoom_in) times, and zoom_out only shrinks it."""
    import tensorflow as tf

    from maskdet.study.datasets import label_safe_zoom

    square = np.zeros((64, 64, 3), np.float32)
    square[24:40, 24:40] = 255.0  # 16 pixels wide, centred

    def widths(zoom_in, zoom_out, label=0):
        out = [label_safe_zoom(square, tf.constant(label), zoom_in, zoom_out, tf.constant([s, 1])) for s in range(12)]
        return np.array([(o.numpy()[32, :, 0] > 127).sum() for o in out])

    tight = widths(0.5, 0.0)
    assert tight.min() >= 15 and tight.max() > 20 and tight.max() <= 33
    loose = widths(0.0, 0.5)
    assert loose.max() <= 17 and loose.min() < 13
    np.testing.assert_array_equal(label_safe_zoom(square, tf.constant(0), 0.0, 0.0, tf.constant([0, 1])), square)


def test_a_zoomed_in_incorrect_crop_keeps_its_chin_and_the_others_zoom_around_the_middle():
    """A mask under the chin sits at the bottom of the crop: zoomed around the
    middle it left the picture and a bare-looking face was labelled incorrect.
    mask_weared_incorrect crops keep their bottom row; the others lose as much
    at the bottom as at the top; a zoom out reflects the crop's edge."""
    import tensorflow as tf

    from maskdet import INCORRECT, LABELS
    from maskdet.study.datasets import label_safe_zoom

    rows = np.tile(np.arange(64, dtype=np.float32)[:, None, None], (1, 64, 3))  # each pixel holds its row
    zoomed_in = 0
    for s in range(20):
        seed = tf.constant([s, 5])
        centred = label_safe_zoom(rows, tf.constant(LABELS.index("with_mask")), 0.3, 0.2, seed).numpy()[:, 32, 0]
        chin = label_safe_zoom(rows, tf.constant(INCORRECT), 0.3, 0.2, seed).numpy()[:, 32, 0]
        top, bottom = centred[0], 63 - centred[-1]
        assert abs(top - bottom) < 0.5  # the same cut at both ends (or the same reflected border)
        if centred[1] > centred[0]:  # zoomed in (a zoom out starts with the reflected border, rows falling)
            zoomed_in += top > 0.5
            assert chin[-1] > 62.5 and chin[0] >= top  # the incorrect crop loses its brow instead
        else:
            np.testing.assert_allclose(chin, centred)  # zoomed out: the same for every label
    assert zoomed_in >= 5


def test_frozen_phase_epochs_cycle_through_the_augmented_copies():
    """Epoch e trains on copy e % copies, every row once per epoch, with its class weight."""
    from types import SimpleNamespace

    from maskdet.study.train import _copy_per_epoch

    copies, n, batch = 3, 10, 4
    features = np.stack([np.stack([np.full(2, 100 * k + row, np.float32) for row in range(n)]) for k in range(copies)])
    labels = np.arange(n, dtype=np.int32) % 3
    weights = {0: 1.0, 1: 2.0, 2: 3.0}
    batches = list(_copy_per_epoch(features, labels, weights, SimpleNamespace(seed=0, epochs=5), batch))
    per_epoch = -(-n // batch)
    assert len(batches) == 5 * per_epoch
    for epoch in range(5):
        x, y, w = (
            np.concatenate([b[i].numpy() for b in batches[epoch * per_epoch : (epoch + 1) * per_epoch]])
            for i in range(3)
        )
        copy, rows = np.divmod(x[:, 0].astype(int), 100)
        assert set(copy) == {epoch % copies} and sorted(rows) == list(range(n))
        np.testing.assert_array_equal(y, labels[rows])
        np.testing.assert_array_equal(w, [weights[int(v)] for v in y])


def test_head_trained_on_cached_features_is_the_saved_models_head(frame):
    """The frozen phase trains the head on the base's cached features; the model it
    returns must score the validation crops, through its own base, exactly as the
    best epoch did on those features."""
    from maskdet.study.train import frozen_features

    params = parse_params({**TINY, "train": {**TINY["train"], "epochs": 3, "fine_tune_epochs": 0, "frozen_copies": 2}})
    train, val = _split(frame, "train"), _split(frame, "val")
    features = frozen_features(train, val, params)
    assert features.train.shape[:2] == (2, len(train)) and features.val.shape[0] == len(val)
    assert not np.allclose(features.train[0], features.train[1])  # each copy its own augmentation
    result = train_classifier(train, val, params, features=features)
    # the validation crops as training reads them (TensorFlow's decoder: study.datasets.image_dataset)
    from maskdet.study.datasets import image_dataset

    ds = image_dataset(val["file"], val["y"], 48, 64)
    probs = np.concatenate([np.asarray(result.model.predict_on_batch(x)) for x, _ in ds])
    loss = -np.mean(np.log(probs[np.arange(len(val)), val["y"].to_numpy()]))
    assert loss == pytest.approx(result.history["val_loss"].min(), abs=1e-4)
    assert list(result.history["phase"]) == ["frozen"] * 3


def test_flat_band_paints_the_lower_part_of_bare_and_masked_crops_but_never_an_incorrect_one():
    import tensorflow as tf

    from maskdet import LABELS
    from maskdet.study.datasets import flat_band

    image = tf.random.stateless_uniform((64, 64, 3), (1, 2), 0.0, 255.0)
    for label in LABELS:
        out = flat_band(image, tf.constant(LABELS.index(label)), 1.0, tf.constant([3, 4])).numpy()
        if label == "mask_weared_incorrect":
            np.testing.assert_array_equal(out, image.numpy())  # its chin mask must stay visible
            continue
        changed = np.flatnonzero((out != image.numpy()).any(axis=(1, 2)))
        assert 6 <= len(changed) <= 23 and changed[-1] == 63  # 10-35 % of the side, at the bottom
        band = out[changed]
        assert np.allclose(band, band[0, 0])  # one flat colour
        np.testing.assert_array_equal(out[: changed[0]], image.numpy()[: changed[0]])
    never = flat_band(image, tf.constant(0), 0.0, tf.constant([3, 4])).numpy()
    np.testing.assert_array_equal(never, image.numpy())


MIRRORED = """
import json, sys
import pandas as pd
import tensorflow as tf

# Two logical CPU devices stand in for two GPUs; set before TensorFlow starts.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from maskdet.params import parse_params
from maskdet.study.train import train_classifier

frame = pd.read_csv(sys.argv[1])
params = parse_params(json.loads(sys.argv[2]))
result = train_classifier(frame[frame["split"] == "train"], frame[frame["split"] == "val"], params)
probs = result.model.predict(tf.zeros((2, 48, 48, 3)), verbose=0)
print(json.dumps({"replicas": result.replicas, "epochs": len(result.history), "probs": probs.tolist()}))
"""


@pytest.mark.scale
def test_mirrored_strategy_trains_on_two_replicas_with_the_batch_per_replica(frame, tmp_path):
    """train.strategy: mirrored over two logical CPU devices (what two GPUs would
    be), in a process of its own because devices are set before TensorFlow starts."""
    import json
    import subprocess
    import sys

    manifest = tmp_path / "manifest.csv"
    frame.to_csv(manifest, index=False)
    settings = {
        "model": {"backbone": "small_cnn", "input_size": 48},
        "train": {"epochs": 2, "fine_tune_epochs": 0, "batch_size": 8, "early_stopping_patience": 0},
    }
    settings["train"]["strategy"] = "mirrored"
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(manifest), json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["epochs"] == 2
    assert np.allclose(np.sum(result["probs"], axis=1), 1.0, atol=1e-5)  # a trained softmax classifier


@pytest.mark.parametrize("frozen_epochs, fine_tune_epochs", [(2, 0), (1, 1)])
def test_the_epoch_is_chosen_on_a_validation_loss_weighted_like_the_training_loss(
    frame, frozen_epochs, fine_tune_epochs
):
    """On a set where one class is rare, the validation loss that picks the epoch
    weighs each crop by its class weight, in the frozen phase (features computed
    once) and in fine-tuning (Keras' own) alike: the mean of weight times loss."""
    from maskdet.study.datasets import image_dataset

    rare = lambda f: f[(f["label"] != "mask_weared_incorrect") | (f.groupby("label").cumcount() < 2)]  # noqa: E731
    train, val = rare(_split(frame, "train")), rare(_split(frame, "val"))
    train_params = {**TINY["train"], "epochs": frozen_epochs, "fine_tune_epochs": fine_tune_epochs, "average_epochs": 1}
    result = train_classifier(train, val, parse_params({**TINY, "train": train_params}))
    weights = class_weights(train["y"].to_numpy())
    assert weights[2] > 2 * weights[0]  # the rare class counts more
    y = val["y"].to_numpy()
    probs = np.concatenate(
        [np.asarray(result.model.predict_on_batch(x)) for x, _ in image_dataset(val["file"], val["y"], 48, 32)]
    )
    loss = -np.log(probs[np.arange(len(y)), y])
    best = result.history[result.history["best"]].iloc[0]
    assert best["val_loss"] == pytest.approx(np.mean([weights[int(k)] for k in y] * loss), rel=1e-4)
