"""Readers for data sets as their publishers ship them.

Each reader returns ``Item``s: one face each, still unread (the image is
opened later, in the validation step), with what is known of who and where
it came from so that the split can keep people and photos on one side.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from maskdet.errors import MissingFileError
from maskdet import LABELS
from maskdet.io.images import IMAGE_EXTENSIONS
from maskdet.io.voc import AnnotationError, VocObject, read_voc


@dataclass(frozen=True)
class Item:
    """One face: a file (and a box in it, for scenes) with its label and provenance."""

    path: Path
    label: str
    box: tuple[int, int, int, int] | None = None  # None: the whole file is the face crop
    person: str | None = None
    photo: str | None = None  # the source photo; all faces of one photo stay together
    style: str = "unknown"  # mask style where known (rendered data), "none" for bare faces
    base: Path | None = None  # the data set's folder: names are relative to it, the same in every checkout

    @property
    def name(self) -> str:
        shown = self.path.relative_to(self.base).as_posix() if self.base else str(self.path)
        return f"{shown}#{','.join(map(str, self.box))}" if self.box else shown


@dataclass(frozen=True)
class Scene:
    """A whole photo with its face boxes, for detection metrics."""

    image: Path
    objects: list[VocObject]


@dataclass
class ReadResult:
    items: list[Item] = field(default_factory=list)
    scenes: list[Scene] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)  # {"item", "reason", "detail"}: skipped, not fatal


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_folders(root: Path) -> ReadResult:
    """One folder per class of face crops (chandrikadeb7's and prajnasb's layout).

    ``with_mask/`` and ``without_mask/`` are required, ``mask_weared_incorrect/``
    optional; other folders and non-image files are reported and skipped.
    """
    missing = [label for label in LABELS[:2] if not (root / label).is_dir()]
    if missing:
        raise MissingFileError(f"{root}: no {' or '.join(missing)} folder; a folder-per-class data set needs "
                                f"with_mask/ and without_mask/ (mask_weared_incorrect/ is optional)")
    result = ReadResult()
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and entry.name not in LABELS:
            result.problems.append({"item": entry.relative_to(root).as_posix(), "reason": "unknown_label",
                                    "detail": f"folder {entry.name!r} is not one of {', '.join(LABELS)}"})
    for label in LABELS:
        folder = root / label
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.is_file() and entry.suffix.lower() not in IMAGE_EXTENSIONS:
                result.problems.append({"item": entry.relative_to(root).as_posix(), "reason": "not_an_image_file",
                                        "detail": f"extension {entry.suffix!r} is not an image extension"})
        result.items += [Item(p, label, photo=str(p.relative_to(root)), base=root) for p in _images_in(folder)]
    return result


def _inside(folder: Path, path: Path) -> bool:
    """Whether ``path``, symlinks followed, lies under ``folder``."""
    return path.resolve().is_relative_to(folder.resolve())


def _find_image(root: Path, xml: Path, filename: str) -> tuple[Path | None, str | None]:
    """(the image of ``xml``, None) or (None, why not). ``<filename>`` names a file
    under images/: an absolute name, one with ``..``, or a symlink that leads out of
    the set is refused, so that no file outside the set is ever read."""
    images = root / "images"
    candidates = [images / (xml.stem + e) for e in IMAGE_EXTENSIONS]
    if filename:
        name = Path(filename)
        if name.is_absolute() or ".." in name.parts or "\\" in filename:
            return None, f"<filename> {filename!r} points outside {images}; give a name inside images/"
        candidates.insert(0, images / name)
    for candidate in candidates:
        if candidate.is_file():
            if not _inside(images, candidate):
                return None, f"{candidate} is a link to {candidate.resolve()}, outside the data set; copy the file in"
            return candidate, None
    return None, f"no image {filename or xml.stem + '.*'} in {images}"


def read_voc_scenes(root: Path) -> ReadResult:
    """Pascal VOC scenes: ``images/*`` and ``annotations/*.xml`` (the Kaggle andrewmvd set).

    Every annotated face becomes an item with its box; the crop is cut later,
    with padding and clipping. Unknown classes, broken boxes, broken XML and
    missing images are reported and skipped.
    """
    if not (root / "annotations").is_dir():
        raise MissingFileError(f"{root}: no annotations/ folder; a VOC data set needs images/ and annotations/*.xml")
    result = ReadResult()
    for xml in sorted((root / "annotations").glob("*.xml")):
        where = xml.relative_to(root).as_posix()
        if not _inside(root / "annotations", xml):
            result.problems.append({"item": where, "reason": "outside_the_set",
                                    "detail": f"a link to {xml.resolve()}, outside the data set; copy the file in"})
            continue
        try:
            ann = read_voc(xml, LABELS)
        except AnnotationError as exc:
            result.problems.append({"item": where, "reason": "bad_annotation", "detail": str(exc)})
            continue
        image, why = _find_image(root, xml, ann.filename)
        if image is None:
            reason = "missing_image" if why.startswith("no image") else "outside_the_set"
            result.problems.append({"item": where, "reason": reason, "detail": why})
            continue
        for reason, detail in ann.problems:
            result.problems.append({"item": where, "reason": reason, "detail": detail})
        photo = image.stem
        for obj in ann.objects:
            result.items.append(Item(image, obj.label, box=obj.box, person=obj.person, photo=photo,
                                     style=obj.style or "unknown", base=root))
        result.scenes.append(Scene(image, ann.objects))
    return result


def read_sample(root: Path) -> ReadResult:
    """The built-in default set (maskdet.data.sample): crops listed in crops.csv with
    person, photo and mask style, plus VOC scenes of the group photos."""
    listing = root / "crops.csv"
    if not listing.is_file():
        raise MissingFileError(f"{listing}: missing; rebuild the default data with `maskdet sample`")
    result = ReadResult()
    with open(listing, newline="") as fh:
        for row in csv.DictReader(fh):
            result.items.append(Item(root / row["file"], row["label"], person=row["person"],
                                     photo=row["photo"], style=row["style"], base=root))
    if (root / "scenes" / "annotations").is_dir():
        result.scenes = read_voc_scenes(root / "scenes").scenes
    return result


READERS = {"folders": read_folders, "voc": read_voc_scenes, "sample": read_sample}
