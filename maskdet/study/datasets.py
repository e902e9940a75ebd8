"""The processed data as tables and as tf.data pipelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from maskdet import INCORRECT, LABELS
from maskdet.errors import MissingFileError


def read_manifest(root: Path) -> pd.DataFrame:
    """data/processed/manifest.csv with absolute paths in ``file`` and the label index in ``y``."""
    path = root / "data" / "processed" / "manifest.csv"
    if not path.is_file():
        raise MissingFileError(f"{path}: missing; run the data stage first (`dvc repro data` or `make repro`)")
    frame = pd.read_csv(path, keep_default_na=False)
    frame["file"] = [str(root / "data" / "processed" / p) for p in frame["path"]]
    frame["y"] = [LABELS.index(label) for label in frame["label"]]
    return frame


def class_weights(labels: np.ndarray, num_classes: int = len(LABELS)) -> dict[int, float]:
    """Inverse-frequency weights, mean 1 over the training items (scikit-learn's 'balanced')."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def resize_for_model(image, size: int):
    """TensorFlow's antialiased bilinear resize to size x size, float32 in [0,
    255]: the reference that ``predict.crops.resize_crop`` (the resize every
    path uses) is held to by a test."""
    import tensorflow as tf

    return tf.cast(tf.image.resize(image, (size, size), antialias=True), tf.float32)


def read_crop(path, size: int) -> np.ndarray:
    """One face crop file as the classifier sees it, through the Predictor's
    own steps: decoded by ``io.images.load_rgb`` (EXIF, colour conversion) and
    resized by ``predict.crops.resize_crop``. The evaluation, the export parity
    check, the CLI and the served model all use these two functions.
    TensorFlow's JPEG decoder differs from Pillow's by up to 14 grey levels on
    the same file, enough to move a probability by 0.12 (measured on the
    default test split): evaluating through it described a path no user runs."""
    from maskdet.io.images import load_rgb
    from maskdet.predict.crops import resize_crop

    return resize_crop(load_rgb(path), size)


def web_photo_look(image, cfg, seed):
    """One training crop (float RGB in [0, 255]) made to look like a photo from
    the web, each effect drawn at random with ``cfg``'s strength (an
    ``AugmentParams``): a colour cast, grey, blur, JPEG artefacts. The rendered
    crops are clean studio-like pictures, and a classifier trained on them alone
    took a blue cast on a bare face for a surgical mask. ``seed`` is a stateless
    seed pair (two int32) so that a run repeats exactly."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 6)
    uniform = lambda k, shape=(): tf.random.stateless_uniform(shape, seeds[k])  # noqa: E731
    if cfg.colour_cast > 0:
        image = image * (1.0 + (uniform(0, (3,)) * 2.0 - 1.0) * cfg.colour_cast)
    if cfg.grayscale > 0:
        grey = tf.repeat(tf.reduce_sum(image * [0.299, 0.587, 0.114], axis=-1, keepdims=True), 3, axis=-1)
        image = tf.where(uniform(1) < cfg.grayscale, grey, image)
    image = tf.clip_by_value(image, 0.0, 255.0)
    # Blur and JPEG run only for the crops that draw them (tf.cond; a tf.where
    # computed both for every crop): the same images, less work per epoch.
    if cfg.blur > 0:

        def blurred(image=image):
            side = tf.shape(image)[0]
            small = tf.cast(tf.cast(side, tf.float32) * (0.3 + 0.5 * uniform(2)), tf.int32)
            return tf.image.resize(tf.image.resize(image, [small, small], antialias=True), [side, side])

        image = tf.cond(uniform(3) < cfg.blur, blurred, lambda image=image: image)
    if cfg.jpeg > 0:

        def encoded(image=image):
            quality = tf.cast(20 + 70 * uniform(4), tf.int32)
            return tf.image.adjust_jpeg_quality(image / 255.0, quality) * 255.0

        image = tf.cond(uniform(5) < cfg.jpeg, encoded, lambda image=image: image)
    return tf.clip_by_value(image, 0.0, 255.0)


def flat_band(image, label, share: float, seed):
    """With probability ``share``, the lower 10-35 % of a crop (float RGB in
    [0, 255]) painted one flat colour, as a photo that ends at the chin looks on
    a plain background, or a face above a plain shirt. Real bare faces framed
    like this were called ``mask_weared_incorrect``: the model had learned
    "something flat under the mouth is a mask pulled down". Left out for that
    class, whose chin mask the band could hide."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 4)
    side = tf.shape(image)[0]
    top = side - tf.cast(tf.cast(side, tf.float32) * (0.1 + 0.25 * tf.random.stateless_uniform((), seeds[0])), tf.int32)
    grey = 40.0 + 180.0 * tf.random.stateless_uniform((), seeds[1])
    colour = tf.clip_by_value(grey + tf.random.stateless_uniform((3,), seeds[2], -20.0, 20.0), 0.0, 255.0)
    below = tf.range(side)[:, None, None] >= top
    draw = tf.random.stateless_uniform((), seeds[3]) < share
    apply = tf.logical_and(draw, label != INCORRECT)
    return tf.where(tf.logical_and(apply, below), colour * tf.ones_like(image), image)


def label_safe_zoom(image, label, zoom_in: float, zoom_out: float, seed):
    """One training crop (float RGB, square) zoomed by a factor drawn from
    [1 - ``zoom_in``, 1 + ``zoom_out``] of its side, bilinear, reflected where
    it zooms out: Keras' RandomZoom, except that it sees the label. A
    ``mask_weared_incorrect`` crop zoomed in keeps its bottom edge (it loses
    brow, not chin): zoomed around the centre, a mask under the chin left the
    crop, and a face cut at the lips, bare to the eye, was labelled incorrect.
    Real bare faces cropped at the lips were then called incorrect."""
    import tensorflow as tf

    side = tf.cast(tf.shape(image)[0], tf.float32)
    shown = 1.0 + tf.random.stateless_uniform((), seed, -zoom_in, zoom_out)  # share of the side shown
    margin = tf.minimum(tf.cast(tf.math.ceil(side * zoom_out / 2.0), tf.int32) + 1, tf.shape(image)[0] - 1)
    padded = tf.pad(image, [[margin, margin], [margin, margin], [0, 0]], mode="REFLECT")
    keep_chin = tf.logical_and(label == INCORRECT, shown < 1.0)
    centre_y = tf.where(keep_chin, side * (1.0 - shown / 2.0), side / 2.0)
    # Sample i of the output at i + 0.5 of the shown span, in the padded crop's pixel-centre coordinates.
    offset = tf.cast(margin, tf.float32) - 0.5 + 0.5 * shown
    start_y, start_x = offset + centre_y - side * shown / 2.0, offset + side / 2.0 - side * shown / 2.0
    span = (side - 1.0) * shown
    full = tf.cast(tf.shape(padded)[0], tf.float32) - 1.0
    box = tf.stack([start_y, start_x, start_y + span, start_x + span]) / full
    size = tf.shape(image)[:2]
    return tf.image.crop_and_resize(padded[None], box[None], [0], size, method="bilinear")[0]


def image_dataset(
    files, labels, size: int, batch_size: int, shuffle: bool = False, seed: int = 0, look=None, repeat: int = 1
):
    """Decoded, resized, cached, batched and prefetched images (raw RGB in [0, 255]).
    ``look`` (an ``AugmentParams``) adds the web-photo look after the cache, a new draw each epoch.
    ``repeat``: the items that many times over, in order, each pass with its own draws of the look."""
    import tensorflow as tf

    def load(path, label):
        # Training alone decodes with TensorFlow's JPEG decoder, not the Predictor's
        # (read_crop): trained on Pillow-decoded crops, the model called fewer real
        # masked crops right on both seeds measured (0.933 and 0.910 against 0.957
        # and 0.933; docs/experiment-log.md). Everything that measures or serves the
        # model reads crops through read_crop.
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return resize_for_model(img, size), label

    ds = tf.data.Dataset.from_tensor_slices((list(files), np.asarray(labels, np.int32)))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    if repeat > 1:
        ds = ds.repeat(repeat)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    zooms = look is not None and (look.zoom_in > 0 or look.zoom_out > 0)
    if look is not None and any((look.colour_cast, look.grayscale, look.blur, look.jpeg, look.flat_band, zooms)):
        # A seed per position from a seeded stream: with the shuffle each crop draws anew every epoch,
        # and a run repeats exactly.
        draws = tf.data.Dataset.random(seed=seed).batch(2).map(lambda s: tf.cast(s % (2**31), tf.int32))

        def augment(item, s):
            image, label = item
            if look.flat_band > 0:
                image = flat_band(image, label, look.flat_band, s + 1)  # its own draws: the look's stay as they were
            image = web_photo_look(image, look, s)
            if zooms:  # its own draws, after the look (as when the zoom was a layer of the model)
                image = label_safe_zoom(image, label, look.zoom_in, look.zoom_out, s + 2)
            return image, label

        ds = tf.data.Dataset.zip((ds, draws)).map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_crops(files, size: int) -> np.ndarray:
    """Crops as one float32 array (n, size, size, 3), read as every path reads them (``read_crop``)."""
    crops = [read_crop(str(f), size) for f in files]
    return np.stack(crops) if crops else np.zeros((0, size, size, 3), np.float32)
