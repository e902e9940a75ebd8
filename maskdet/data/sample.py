"""The built-in default data set (``data.source: sample``).

Real face photos from pinned registry packages (maskdet.io.assets), faces found
with the Ultra-Light detector and kept only where the face mesh agrees there
is a face, masks rendered from the mesh landmarks (maskdet.data.masks). It writes a
folder in the shape the data stage reads:

    crops/<label>/<person>_<n>.jpg   jittered face crops, one identity each
    crops.csv                        file, label, person, photo, style, placement, colour, lookalike
    scenes/images/*.jpg              the group photos, masks rendered on every face
    scenes/annotations/*.xml         Pascal VOC boxes (plus <person> and <style>)
    contact_sheet.png                a few crops of every class, to look at
"""

from __future__ import annotations

import csv
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from maskdet import LABELS
from maskdet.io import assets
from maskdet.io.atomic import atomic_path
from maskdet.predict.detectors import Detection, UltraLightDetector
from maskdet.io.images import load_rgb, write_jpeg
from maskdet.data.landmarks import FaceMesh, FaceMeshModel
from maskdet.data.lookalikes import draw_lookalike, random_lookalike
from maskdet.data.masks import MaskSpec, random_spec, render_mask
from maskdet.io.voc import VocObject, write_voc

SCENE_WIDTH = 1280  # group photos are kept at this width: enough for detection, small on disk

# (asset, photo id, who the main face is). Group photos name nobody: each face
# there is its own person. The portraits name their subject; the partial faces
# are crops of obama.jpg and 32bit.png is obama2.jpg with alpha.
PHOTOS = [
    *[(a, f"faceapi-sample{i + 1}", None) for i, a in enumerate(assets.FACE_API_PHOTOS)],
    *[(a, Path(a[1]).stem, "biden" if "biden" in a[1] else "obama") for a in assets.PORTRAIT_PHOTOS],
    (assets.ASTRONAUT_PHOTO, "astronaut", "astronaut"),
]
GROUP_PHOTOS = tuple(photo for _, photo, subject in PHOTOS if subject is None)


@dataclass
class SourceFace:
    person: str
    photo: str
    detection: Detection
    mesh: FaceMesh


def find_faces(rgb: np.ndarray, detector, mesh_model, face_score: float, min_face: int) -> list[tuple[Detection, FaceMesh]]:
    """Faces the detector finds and the face mesh confirms, left to right."""
    found = []
    for det in sorted(detector(rgb), key=lambda d: d.box[0]):
        if min(det.width, det.height) < min_face:
            continue
        mesh = mesh_model(rgb, det.box)
        if mesh.score >= face_score:
            found.append((det, mesh))
    return found


def jittered_crop(rgb: np.ndarray, box: tuple[int, int, int, int], size: int, rng: np.random.Generator) -> np.ndarray:
    """A square face crop with the pose, framing and light jitter of a real capture."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * rng.uniform(1.15, 1.45)
    cx = (x1 + x2) / 2 + rng.uniform(-0.07, 0.07) * side
    cy = (y1 + y2) / 2 + rng.uniform(-0.07, 0.07) * side
    angle = rng.uniform(-12, 12)
    squeeze = rng.uniform(0.9, 1.1)  # a small turn of the head reads as a horizontal squeeze
    scale = size / side
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0] *= squeeze
    m[:, 2] = np.array([size / 2, size / 2]) - m[:, :2] @ np.array([cx, cy])
    crop = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    img = crop.astype(np.float32)
    img = (img - 128) * rng.uniform(0.8, 1.2) + 128 + rng.uniform(-25, 25)
    img *= rng.uniform(0.92, 1.08, 3)  # colour temperature
    img = 255 * (np.clip(img, 0, 255) / 255) ** rng.uniform(0.8, 1.25)
    if rng.random() < 0.25:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    return np.clip(img, 0, 255).astype(np.uint8)


def _placement_for(label: str, rng: np.random.Generator, one_loop: float = 0.0) -> str | None:
    if label == "with_mask":
        return "correct"
    if label == "mask_weared_incorrect":
        if one_loop and rng.random() < one_loop:  # no draw at 0: the rest of the data stays as it is
            return "one_loop"
        return str(rng.choice(["nose_out", "chin"], p=[0.7, 0.3]))  # nose out is by far the commonest
    return None


@dataclass
class Dressed:
    """A photo with one face dressed for ``label``: its mask and what else it wears."""

    rgb: np.ndarray
    spec: MaskSpec | None  # None: a bare face
    lookalike: str | None


def dress(rgb: np.ndarray, face: SourceFace, label: str, rng: np.random.Generator, cfg) -> Dressed:
    """Draw what a face of ``label`` wears: a mask placed for the label, and on the
    shares ``cfg`` (SampleParams) asks for, facial hair or eyewear (maskdet.data.lookalikes)."""
    placement = _placement_for(label, rng, cfg.one_loop)
    spec = random_spec(rng, placement) if placement else None
    lookalike = random_lookalike(rng, bare=spec is None, hair_share=cfg.facial_hair, eyewear_share=cfg.eyewear)
    if lookalike:  # under the mask: a mask hides facial hair, and eyewear sits above it
        rgb = draw_lookalike(rgb, face.mesh, lookalike, rng)
    if spec:
        rgb = render_mask(rgb, face.mesh, spec, rng)
    return Dressed(rgb, spec, lookalike)


def collect_faces(cfg, progress: bool = True) -> tuple[list[SourceFace], dict[str, np.ndarray]]:
    detector = UltraLightDetector(score_threshold=cfg.detector_score)
    mesh_model = FaceMeshModel()
    faces, images = [], {}
    for asset, photo, subject in tqdm(PHOTOS, desc="finding faces", disable=not progress, file=sys.stderr):
        rgb = load_rgb(assets.extract(asset))
        images[photo] = rgb
        found = find_faces(rgb, detector, mesh_model, cfg.face_score, cfg.min_face)
        main = max(range(len(found)), key=lambda i: found[i][0].width, default=None)
        for k, (det, mesh) in enumerate(found):
            person = subject if (subject and k == main) else f"{photo}-p{k + 1}"
            faces.append(SourceFace(person, photo, det, mesh))
    return faces, images


def build_sample(out: Path, cfg, progress: bool = True) -> dict[str, int]:
    """Build the default data set into ``out`` (replaced whole, never half-written)."""
    rng = np.random.default_rng(cfg.seed)
    faces, images = collect_faces(cfg, progress)
    with atomic_path(out) as tmp:
        for label in LABELS:
            (tmp / "crops" / label).mkdir(parents=True)
        by_person: dict[str, list[SourceFace]] = {}
        for face in faces:
            by_person.setdefault(face.person, []).append(face)

        rows, counts = [], dict.fromkeys(LABELS, 0)
        jobs = [(p, label, n) for p in sorted(by_person) for label in LABELS for n in range(cfg.crops_per_class_per_person)]
        for person, label, n in tqdm(jobs, desc="rendering crops", disable=not progress, file=sys.stderr):
            face = by_person[person][int(rng.integers(len(by_person[person])))]
            worn = dress(images[face.photo], face, label, rng, cfg)
            crop = jittered_crop(worn.rgb, face.detection.box, cfg.crop_size, rng)
            name = f"{person}_{n:03d}.jpg"
            write_jpeg(tmp / "crops" / label / name, crop, int(rng.integers(70, 96)))
            spec = worn.spec
            rows.append({"file": f"crops/{label}/{name}", "label": label, "person": person, "photo": face.photo,
                         "style": spec.style if spec else "none", "placement": spec.placement if spec else "none",
                         "colour": spec.colour if spec else "none", "lookalike": worn.lookalike or "none"})
            counts[label] += 1
        with open(tmp / "crops.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

        _build_scenes(tmp / "scenes", faces, images, cfg, rng)
        write_contact_sheet(tmp / "contact_sheet.png", tmp, rows, rng)
    return counts


def _build_scenes(folder: Path, faces: list[SourceFace], images: dict[str, np.ndarray], cfg,
                  rng: np.random.Generator) -> None:
    """Group photos with a random class per face, as a Pascal VOC scene set."""
    (folder / "images").mkdir(parents=True)
    (folder / "annotations").mkdir(parents=True)
    for photo in GROUP_PHOTOS:
        on_photo = [f for f in faces if f.photo == photo]
        for r in range(cfg.scene_renders):
            rgb = images[photo]
            objects = []
            for face in on_photo:
                label = LABELS[int(rng.integers(len(LABELS)))]
                worn = dress(rgb, face, label, rng, cfg)
                rgb = worn.rgb
                objects.append(VocObject(label, face.detection.box, person=face.person,
                                         style=worn.spec.style if worn.spec else "none"))
            scale = SCENE_WIDTH / rgb.shape[1]
            small = cv2.resize(rgb, (SCENE_WIDTH, round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
            objects = [o.scaled(scale) for o in objects]
            name = f"{photo}_r{r + 1}"
            write_jpeg(folder / "images" / f"{name}.jpg", small, 92)
            write_voc(folder / "annotations" / f"{name}.xml", f"{name}.jpg", small.shape, objects)


def write_contact_sheet(path: Path, root: Path, rows: list[dict], rng: np.random.Generator,
                        per_class: int = 10, tile: int = 112) -> None:
    """One row of random crops per class, the class name written on the left."""
    label_w = 270
    sheet = np.full((tile * len(LABELS), label_w + tile * per_class, 3), 255, np.uint8)
    for r, label in enumerate(LABELS):
        mine = [row for row in rows if row["label"] == label]
        picks = rng.choice(len(mine), size=min(per_class, len(mine)), replace=False) if mine else []
        cv2.putText(sheet, label, (8, r * tile + tile // 2 + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.62, (0, 0, 0), 2,
                    cv2.LINE_AA)
        for c, i in enumerate(picks):
            img = load_rgb(root / mine[int(i)]["file"])
            sheet[r * tile:(r + 1) * tile, label_w + c * tile:label_w + (c + 1) * tile] = cv2.resize(img, (tile, tile))
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
