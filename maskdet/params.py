"""params.yaml: every knob of the study, validated once at the boundary.

An unknown key, a wrong type, a fraction outside [0, 1] or a missing dataset
path fails with one line naming the key, the value and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from maskdet.errors import MaskdetError
from maskdet.paths import SAMPLE_DATA, SPLITS_DIR, project_root, resolve

Fraction = Field(ge=0.0, le=1.0)


class ParamsError(MaskdetError, ValueError):
    """params.yaml is missing, unreadable, or holds a value that is not allowed."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SplitParams(_Section):
    train: float = Fraction
    val: float = Fraction
    test: float = Fraction

    @model_validator(mode="after")
    def _sums_to_one(self):
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must add up to 1, they add up to {total:g}")
        return self


class SampleParams(_Section):
    """How the built-in default data set is rendered."""

    crops_per_class_per_person: int = Field(20, ge=1, le=1000)
    crop_size: int = Field(224, ge=32, le=1024)
    scene_renders: int = Field(3, ge=0, le=50)
    detector_score: float = Field(0.7, ge=0.0, le=1.0)
    face_score: float = Field(0.5, ge=0.0, le=1.0)
    min_face: int = Field(80, ge=8)
    seed: int = 42
    # Shares drawn beside the masks (maskdet.data.lookalikes, maskdet.data.masks); 0 draws
    # none and leaves the rest of the data as it is. Measured on real photos and not on
    # by default (docs/experiment-log.md, "Real incorrect masks and lookalikes").
    facial_hair: float = Field(0.0, ge=0.0, le=1.0)
    eyewear: float = Field(0.0, ge=0.0, le=1.0)
    one_loop: float = Field(0.0, ge=0.0, le=1.0)


class DataParams(_Section):
    source: Literal["sample", "voc", "folders"] = "sample"
    path: str = SAMPLE_DATA
    crop_padding: float = Field(0.15, ge=0.0, le=1.0)
    # A crop of 8 px is data: a classifier trained on a street set called the crops
    # under 16 px of its test photos right 19 times in 20 (measured for commit 445d07a).
    min_size: int = Field(4, ge=1)
    near_duplicate_distance: int = Field(4, ge=0, le=64)
    # With a VOC or folder set: also train on the built-in rendered set (its crops go to
    # train and val only; the test split stays the user's). Its rendered incorrectly
    # worn masks helped the rare class of a real street set (docs/experiment-log.md).
    add_sample: bool = True
    split: SplitParams = SplitParams(train=0.7, val=0.15, test=0.15)
    seed: int = 42
    # A split file under data/splits (maskdet/data/split_file.py): the user's faces go to
    # the sides it names instead of a drawn split, so that two settings are compared on
    # the same test photos. None: drawn from data.split and data.seed.
    split_from: str | None = None
    sample: SampleParams = SampleParams()


class ModelParams(_Section):
    backbone: Literal["mobilenetv2", "small_cnn"] = "mobilenetv2"
    input_size: int = Field(160, ge=32, le=512)
    dropout: float = Field(0.2, ge=0.0, le=1.0)


class AugmentParams(_Section):
    flip: bool = True
    rotation: float = Field(10.0, ge=0.0, le=180.0)  # degrees, either way
    # Real face crops come framed anywhere from loose to cut at the brows and the lips.
    zoom_in: float = Field(0.3, ge=0.0, le=0.9)  # shows down to (1 - this) of the side (incorrect: chin kept)
    zoom_out: float = Field(0.2, ge=0.0, le=1.0)  # shows up to (1 + this) of the side
    translation: float = Field(0.1, ge=0.0, le=0.5)  # share of the side, either way: faces framed off centre
    brightness: float = Field(0.15, ge=0.0, le=1.0)
    contrast: float = Field(0.15, ge=0.0, le=1.0)
    # The look of web photos, applied to training crops only (maskdet.study.datasets.web_photo_look).
    colour_cast: float = Field(0.25, ge=0.0, le=0.5)  # each channel's gain drawn from 1 +- this
    grayscale: float = Field(0.1, ge=0.0, le=1.0)  # share of crops turned grey
    blur: float = Field(0.3, ge=0.0, le=1.0)  # share of crops blurred (shrunk, then grown back)
    jpeg: float = Field(0.5, ge=0.0, le=1.0)  # share of crops re-encoded as JPEG at quality 20-90
    # Share of bare and masked crops whose lower part is one flat colour: a photo that
    # ends at the chin, a plain shirt. Never on mask_weared_incorrect (it could hide a
    # chin mask). With the chin-keeping zoom, 0.2 helps real photos on three seeds (docs/experiment-log.md).
    flat_band: float = Field(0.2, ge=0.0, le=1.0)


class TrainParams(_Section):
    epochs: int = Field(12, ge=1, le=1000)
    # >0: the frozen phase trains the head on the frozen base's features of this many
    # augmented copies of the training split (study/train.py), computed once: minutes
    # faster, but one such training did worse on real photos (docs/experiment-log.md). 0: the base
    # runs on fresh augmentations every epoch.
    frozen_copies: int = Field(0, ge=0, le=100)
    batch_size: int = Field(32, ge=1, le=4096)  # per replica: a step takes batch_size x replicas crops
    # default: one device; mirrored: tf.distribute.MirroredStrategy over the visible GPUs (study/train.py)
    strategy: Literal["default", "mirrored"] = "default"
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    early_stopping_patience: int = Field(4, ge=0)
    # the weights kept: the mean of those of the epochs with the lowest validation losses,
    # this many of them (1: the best epoch's alone). One epoch's validation loss moves by
    # more than the epochs around it differ (docs/experiment-log.md).
    average_epochs: int = Field(1, ge=1, le=20)
    fine_tune_epochs: int = Field(10, ge=0, le=1000)  # 0: no fine-tuning phase
    fine_tune_layers: int = Field(60, ge=0)  # top layers of the base unfrozen for fine-tuning
    fine_tune_learning_rate: float = Field(3e-4, gt=0.0, le=1.0)
    class_weights: bool = True
    seed: int = 42
    augment: AugmentParams = AugmentParams()


class EvaluateParams(_Section):
    leave_one_style_out: bool = True
    loso_epochs: int = Field(4, ge=1, le=1000)
    # The held-out and control models differ only in the style they saw, so they can
    # train at a smaller input than the main model: the comparison holds, in a third of the time.
    loso_input_size: int = Field(96, ge=32, le=512)
    calibration_bins: int = Field(10, ge=2, le=100)
    worst_mistakes: int = Field(12, ge=0, le=200)
    # Labelled sets (one folder per class, or VOC) the evaluation also scores when they
    # are there, for "trained on A, tested on B"; one that is not there is skipped with a line.
    external: list[str] = []
    # Detector score down to which the scene evaluation ranks found faces for AP, as
    # detection benchmarks validate below what they show; recall and precision count
    # the faces the Predictor shows. 0.05 and 0.02 scored within 0.001 of mAP of 0.1
    # on a user's street photos, with 2.5 and 9 times its answers (docs/experiment-log.md).
    scene_candidates_from: float = Field(0.1, gt=0.0, le=1.0)


DetectorName = Literal["centerface", "ultralight", "blazeface"]
DETECTOR_NAMES = get_args(DetectorName)
RuntimeName = Literal["auto", "keras", "float32", "float16", "int8"]
RUNTIME_NAMES = get_args(RuntimeName)


class PhotoParams(_Section):
    """How the Predictor looks at a still photo (CLI, dashboard uploads, served
    model, evaluation). Video and webcam frames keep the fast settings of the
    predict section (``min_face``, ``<detector>_input``)."""

    # The detector sees the photo at this many times its own size: street photos
    # hold faces of 10-20 px, which the detectors miss at 1x (docs/results/real-scenes.md).
    scale: float = Field(2.0, ge=0.25, le=4.0)
    # Cap on the detector's input (width x height): a larger photo is seen shrunk to it.
    max_pixels: int = Field(2_000_000, ge=65_536, le=16_000_000)
    min_face: int = Field(4, ge=1)  # pixels, shorter side of the detector's box, in the photo


class PredictParams(_Section):
    """The Predictor used by the CLI, the dashboard, the served model and the scene evaluation."""

    detector: DetectorName = "centerface"
    score_threshold: float | None = Field(None, ge=0.0, le=1.0)  # None: the detector's own
    min_face: int = Field(20, ge=1)  # video and webcam frames: pixels, shorter side of the detector's box
    photo: PhotoParams = PhotoParams()
    closeup_retry: bool = True  # no face found: look again at the image shrunk into a frame twice its size
    # Width and height the image is fitted into for each detector that takes a size (BlazeFace is fixed at 192x192).
    centerface_input: list[Annotated[int, Field(ge=64, le=2048)]] = Field([320, 240], min_length=2, max_length=2)
    ultralight_input: list[Annotated[int, Field(ge=64, le=2048)]] = Field([400, 300], min_length=2, max_length=2)

    def input_sizes(self) -> dict[str, tuple[int, int]]:
        """The input size of each detector that takes one, by detector name."""
        return {"centerface": tuple(self.centerface_input), "ultralight": tuple(self.ultralight_input)}

    runtime: RuntimeName = "auto"  # auto: the fastest TFLite export that passed parity in training
    # Share of faces with a mask worn incorrectly that the Predictor answers for
    # (predict/prior.py); None: the classifier's own probabilities.
    incorrect_share: float | None = Field(0.03, gt=0.0, lt=1.0)


class Params(_Section):
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    predict: PredictParams = PredictParams()


def _one_line(exc: ValidationError, source: str, raw: dict) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    value = raw
    for part in err["loc"]:
        if isinstance(value, dict):
            value = value.get(part, "<missing>")
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            value = "<missing>"
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}' (check its spelling; see params.yaml for the known keys)"
    expected = err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    return f"{source}: {key} = {value!r} is not allowed: expected {expected}"


def parse_params(raw: dict, source: str = "params.yaml", check_paths: bool = True, root: Path | None = None) -> Params:
    """Validate a params mapping (as read from YAML) into ``Params``."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_one_line(exc, source, raw)) from None
    if check_paths and params.data.source != "sample":
        path = resolve(params.data.path, root)
        if not path.is_dir():
            raise ParamsError(
                f"{source}: data.path = {params.data.path!r} is not allowed: expected an existing "
                f"folder holding the '{params.data.source}' data set (looked at {path})"
            )
    if params.data.split_from is not None:
        _check_split_file(params.data.split_from, source, root, check_paths)
    return params


def _check_split_file(split_from: str, source: str, root: Path | None, check_paths: bool) -> None:
    """data.split_from names a file inside data/splits, the folder the data stage depends on."""
    folder = resolve(SPLITS_DIR, root).resolve()
    path = resolve(split_from, root).resolve()
    if not path.is_relative_to(folder):
        raise ParamsError(
            f"{source}: data.split_from = {split_from!r} is not allowed: expected a file in {SPLITS_DIR}/ "
            f"(the data stage re-runs when a file there changes), for example {SPLITS_DIR}/kaggle.csv"
        )
    if check_paths and not path.is_file():
        raise ParamsError(
            f"{source}: data.split_from = {split_from!r} is not allowed: expected an existing split file "
            f"(looked at {path}); copy an earlier run's data/processed/manifest.csv there"
        )


def with_overrides(section: _Section, source: str = "arguments", **changes) -> _Section:
    """``section`` with ``changes`` applied (a None leaves its field as it is),
    validated as params.yaml is: a wrong value is a one-line ``ParamsError``."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return section
    raw = {**section.model_dump(), **changes}
    try:
        return type(section).model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_one_line(exc, source, raw)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping: PyYAML keeps
    the last one without a word, so a forgotten second ``epochs:`` would win silently."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                lines = f"lines {seen[key] + 1} and {key_node.start_mark.line + 1}"
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice ({lines}); keep one", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def load_params(path: str | Path | None = None, check_paths: bool = True) -> Params:
    """Read and validate params.yaml (by default the project root's)."""
    root = project_root() if path is None else None
    path = Path(path) if path is not None else root / "params.yaml"
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file; the project's params.yaml lists every setting") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc})") from None
    return parse_params(raw or {}, str(path), check_paths, root or path.resolve().parent)
