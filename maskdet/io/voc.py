"""Pascal VOC annotations, as the Kaggle andrewmvd "Face Mask Detection" set ships them.

Reading goes through defusedxml: no entity expansion, no external entities.
Besides the standard tags we write (and read back, when present) ``<person>``
and ``<style>`` per object, which standard VOC tools ignore.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from maskdet.errors import MaskdetError
from maskdet.io.atomic import atomic_path

MAX_COORDINATE = 100_000  # pixels: no photo is wider; 1e308 is a hostile file, not a face


class AnnotationError(MaskdetError, ValueError):
    """A VOC file that cannot be used at all (the reason is in the message)."""


@dataclass(frozen=True)
class VocObject:
    label: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels
    difficult: bool = False
    person: str | None = None
    style: str | None = None

    def scaled(self, factor: float) -> VocObject:
        return replace(self, box=tuple(int(round(v * factor)) for v in self.box))


@dataclass(frozen=True)
class VocAnnotation:
    filename: str
    size: tuple[int, int] | None  # width, height as the file states them
    objects: list[VocObject]
    problems: list[tuple[str, str]]  # (reason, detail) for every object that was skipped


def read_voc(path: Path, labels: tuple[str, ...]) -> VocAnnotation:
    """Parse one annotation. Objects with unknown names or unusable boxes are skipped
    and listed in ``problems``; a file that is not VOC XML raises AnnotationError."""
    try:
        root = SafeET.parse(path).getroot()
    except (ET.ParseError, DefusedXmlException) as exc:
        raise AnnotationError(f"{path}: not usable XML ({type(exc).__name__}: {exc})") from None
    if root.tag != "annotation":
        raise AnnotationError(f"{path}: root element is <{root.tag}>, expected <annotation>")
    filename = (root.findtext("filename") or "").strip()
    size = None
    w, h = root.findtext("size/width"), root.findtext("size/height")
    try:
        if w and h and int(float(w)) > 0 and int(float(h)) > 0:
            size = (int(float(w)), int(float(h)))
    except ValueError:
        size = None
    objects, problems = [], []
    for i, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        where = f"object {i + 1}"
        if name not in labels:
            problems.append(("unknown_label", f"{where}: class {name!r} is not one of {', '.join(labels)}"))
            continue
        try:
            values = [float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            problems.append(("bad_box", f"{where}: <bndbox> is missing or not numeric"))
            continue
        reason = _box_problem(values, size)
        if reason:
            problems.append((reason[0], f"{where}: box {_shown(values)} {reason[1]}"))
            continue
        box = tuple(int(round(v)) for v in values)
        objects.append(
            VocObject(
                name,
                box,
                difficult=(obj.findtext("difficult") or "0").strip() == "1",
                person=obj.findtext("person"),
                style=obj.findtext("style"),
            )
        )
    return VocAnnotation(filename, size, objects, problems)


def _shown(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _box_problem(values: list[float], size: tuple[int, int] | None) -> tuple[str, str] | None:
    """(reason, what is wrong) for a box no face can have, else None. A box that is
    partly outside the image is kept: the crop step clips it and says so."""
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in values):
        return "bad_box", f"is not a pixel coordinate (each must be a number within +-{MAX_COORDINATE})"
    x1, y1, x2, y2 = values
    if x2 <= x1 or y2 <= y1:
        return "inverted_box", "has xmax <= xmin or ymax <= ymin"
    if size and (x2 <= 0 or y2 <= 0 or x1 >= size[0] or y1 >= size[1]):
        return "box_outside_image", f"lies outside the {size[0]}x{size[1]} image"
    return None


def write_voc(path: Path, filename: str, shape: tuple[int, ...], objects: list[VocObject]) -> None:
    """Write one annotation file atomically."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "images"
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    for tag, value in (("width", shape[1]), ("height", shape[0]), ("depth", shape[2] if len(shape) > 2 else 1)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for o in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = o.label
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "1" if o.difficult else "0"
        if o.person:
            ET.SubElement(obj, "person").text = o.person
        if o.style:
            ET.SubElement(obj, "style").text = o.style
        bnd = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), o.box):
            ET.SubElement(bnd, tag).text = str(int(value))
    ET.indent(root)
    with atomic_path(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="unicode")
