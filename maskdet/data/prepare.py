"""The data stage: read a data set, validate and normalise every face, drop exact
duplicates, group people, photos and near duplicates, split (or take the split of a file:
``data.split_from``), and write
``data/processed`` (crops, manifest.csv, test scenes) and the validation report.

Nothing is dropped silently: every item left out is in the report with its
reason. Outputs are built in a temporary folder and moved into place whole.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image
from tqdm import tqdm

from maskdet import LABELS
from maskdet.io.images import ImageError, load_rgb, write_jpeg
from maskdet.params import Params
from maskdet.paths import SAMPLE_DATA, TRAIN_SCENES, resolve
from maskdet.data.readers import READERS, Item, ReadResult
from maskdet.data.split import SPLITS, connected_groups, split_by_group
from maskdet.data.split_file import sides_from_file
from maskdet.io.atomic import atomic_path, write_json_atomic
from maskdet.io.voc import write_voc
from maskdet.predict.crops import clip_box, padded_box

MANIFEST_COLUMNS = ("path", "label", "split", "group", "dataset", "sha256", "source", "person", "photo", "style",
                    "width", "height")


@dataclass
class Crop:
    item: Item
    rgb: np.ndarray
    pixels_sha256: str
    phash: int


def cut_crops(items: list[Item], padding: float, min_size: int, report: dict,
               progress: bool = True) -> list[Crop]:
    """Read, normalise and cut every item; what cannot be used goes to report['dropped']."""
    crops, cache = [], {}
    for item in tqdm(items, desc="validating", disable=not progress, file=sys.stderr):
        key = str(item.path)
        if key not in cache:
            notes: list[str] = []
            try:
                cache = {key: (load_rgb(item.path, notes), notes)}  # keep one scene at a time
            except ImageError as exc:
                cache = {key: (exc, [])}
        image, notes = cache[key]
        if isinstance(image, ImageError):
            report["dropped"].append({"item": item.name, "reason": image.reason, "detail": str(image)})
            continue
        if notes:
            report["normalized"].append({"item": item.name, "changes": sorted(set(notes))})
        rgb = image
        if item.box is not None:
            box = clip_box(item.box, rgb.shape[1], rgb.shape[0])
            if box is None:
                report["dropped"].append({"item": item.name, "reason": "degenerate_box",
                                          "detail": f"box {item.box} has no area inside the "
                                                    f"{rgb.shape[1]}x{rgb.shape[0]} image"})
                continue
            if box != tuple(item.box):
                report["clipped"].append({"item": item.name, "box": list(item.box), "clipped_to": list(box)})
            x1, y1, x2, y2 = padded_box(box, padding, rgb.shape[1], rgb.shape[0])
            rgb = rgb[y1:y2, x1:x2]
        if min(rgb.shape[:2]) < min_size:
            report["dropped"].append({"item": item.name, "reason": "too_small",
                                      "detail": f"{rgb.shape[1]}x{rgb.shape[0]} pixels; data.min_size is {min_size}"})
            continue
        rgb = np.ascontiguousarray(rgb)
        digest = hashlib.sha256(f"{rgb.shape}".encode() + rgb.tobytes()).hexdigest()
        phash = int(str(imagehash.phash(Image.fromarray(rgb))), 16)
        crops.append(Crop(item, rgb, digest, phash))
    return crops


def drop_exact_duplicates(crops: list[Crop], report: dict) -> list[Crop]:
    """Keep the first of every set of crops with identical pixels."""
    first: dict[str, Crop] = {}
    kept = []
    for crop in crops:
        seen = first.get(crop.pixels_sha256)
        if seen is None:
            first[crop.pixels_sha256] = crop
            kept.append(crop)
        else:
            report["dropped"].append({"item": crop.item.name, "reason": "exact_duplicate",
                                      "detail": f"same pixels as {seen.item.name}"})
    return kept


def near_duplicate_pairs(hashes: list[int], max_distance: int) -> list[tuple[int, int]]:
    """Index pairs whose 64-bit perceptual hashes differ in at most ``max_distance`` bits."""
    if len(hashes) < 2:
        return []
    bits = np.unpackbits(np.array(hashes, dtype=np.uint64).view(np.uint8).reshape(-1, 8), axis=1)
    pairs = []
    for i in range(len(hashes) - 1):  # row by row: memory stays linear in the data set size
        dist = np.count_nonzero(bits[i + 1:] != bits[i], axis=1)
        pairs += [(i, i + 1 + int(j)) for j in np.nonzero(dist <= max_distance)[0]]
    return pairs


def _links(item: Item) -> tuple[str | None, str | None]:
    return (f"person:{item.person}" if item.person else None, f"photo:{item.photo}" if item.photo else None)


def _write_scenes(folder: Path, read: ReadResult, split_of_key: dict[str, str], split: str = "test") -> int:
    """Copy the scenes that show faces of ``split``; faces of people outside it
    are marked difficult, which VOC evaluation ignores."""
    written = 0
    for scene in read.scenes:
        objects = []
        for obj in scene.objects:
            key = f"person:{obj.person}" if obj.person else f"photo:{scene.image.stem}"
            objects.append(type(obj)(obj.label, obj.box, split_of_key.get(key) != split, obj.person, obj.style))
        if all(o.difficult for o in objects):
            continue
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "annotations").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(scene.image, folder / "images" / scene.image.name)
        shape = load_rgb(scene.image).shape
        write_voc(folder / "annotations" / f"{scene.image.stem}.xml", scene.image.name, shape, objects)
        written += 1
    return written


def prepare(params: Params, root: Path, out: Path | None = None, report_path: Path | None = None,
            progress: bool = True) -> dict:
    """Run the data stage; returns the validation report (also written to disk)."""
    cfg = params.data
    source_dir = resolve(cfg.path, root)
    out = out or root / "data" / "processed"
    report_path = report_path or root / "reports" / "data_validation.json"
    read = READERS[cfg.source](source_dir)
    report: dict = {"source": cfg.source, "path": cfg.path, "items_read": len(read.items),
                    "dropped": list(read.problems), "normalized": [], "clipped": [], "near_duplicate_groups": []}

    fractions = {s: getattr(cfg.split, s) for s in SPLITS}
    crops = drop_exact_duplicates(cut_crops(read.items, cfg.crop_padding, cfg.min_size, report, progress), report)
    # A user's photos are split in proportion (maskdet/data/split.py), so that the test
    # photos hold crowds and small faces as the set does; the built-in set keeps the
    # fill its committed model was trained on.
    splits, group_names = _split(crops, fractions, cfg, report, proportional=cfg.source != "sample")
    if cfg.split_from:
        splits, by_photo = sides_from_file([c.item.name for c in crops], [c.item.photo for c in crops],
                                           resolve(cfg.split_from, root))
        report["split_from"] = {"file": cfg.split_from, "faces_placed_by_photo": by_photo}
    datasets = [cfg.source] * len(crops)
    if cfg.add_sample and cfg.source != "sample":
        # The built-in set beside the user's: train and val only, so the test
        # split (and every figure on it) is the user's data alone.
        sample = READERS["sample"](resolve(SAMPLE_DATA, root))
        report["items_read"] += len(sample.items)
        report["dropped"] += list(sample.problems)
        extra = drop_exact_duplicates(cut_crops(sample.items, cfg.crop_padding, cfg.min_size, report, progress),
                                      report)
        learn = fractions["train"] + fractions["val"]
        extra_splits, extra_names = _split(
            extra, {"train": fractions["train"] / learn, "val": fractions["val"] / learn, "test": 0.0}, cfg, report)
        crops, splits, group_names = crops + extra, splits + extra_splits, group_names + extra_names
        datasets += ["sample"] * len(extra)

    with atomic_path(out) as tmp:
        for label in LABELS:
            (tmp / "crops" / label).mkdir(parents=True)
        rows, split_of_key = [], {}
        for i, (crop, split, group, dataset) in enumerate(zip(crops, splits, group_names, datasets)):
            rel = Path("crops") / crop.item.label / f"{i:05d}.jpg"
            data = write_jpeg(tmp / rel, crop.rgb)
            for key in _links(crop.item):
                if key:
                    split_of_key[key] = split
            rows.append({"path": rel.as_posix(), "label": crop.item.label, "split": split,
                         "group": group, "dataset": dataset, "sha256": hashlib.sha256(data).hexdigest(),
                         "source": crop.item.name, "person": crop.item.person or "", "photo": crop.item.photo or "",
                         "style": crop.item.style, "width": crop.rgb.shape[1], "height": crop.rgb.shape[0]})
        with open(tmp / "manifest.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        report["test_scenes"] = _write_scenes(tmp / "scenes", read, split_of_key)
        if cfg.source == "voc":  # hand-drawn boxes: the detector's box correction is fitted on them in training
            report["train_scenes"] = _write_scenes(tmp / TRAIN_SCENES, read, split_of_key, "train")
        counts = Counter((r["split"], r["label"]) for r in rows)
        report["counts"] = {s: {label: counts[(s, label)] for label in LABELS} for s in SPLITS}
        report["groups"] = {s: len({r["group"] for r in rows if r["split"] == s}) for s in SPLITS}
        report["kept"] = len(rows)
        report["dropped_by_reason"] = dict(Counter(d["reason"] for d in report["dropped"]))
    write_json_atomic(report_path, report)
    return report


def _split(crops: list, fractions: dict[str, float], cfg, report: dict,
           proportional: bool = False) -> tuple[list[str], list[str]]:
    """The split and the group name of each crop: people, photos and near
    duplicates (listed in ``report``) linked into groups, whole groups split."""
    pairs = near_duplicate_pairs([c.phash for c in crops], cfg.near_duplicate_distance)
    near = connected_groups([[] for _ in crops], pairs)
    for members in _members(near).values():
        if len(members) > 1:
            report["near_duplicate_groups"].append([crops[i].item.name for i in members])
    groups = connected_groups([[*_links(c.item), f"near:{near[i]}"] for i, c in enumerate(crops)])
    splits = split_by_group([c.item.label for c in crops], groups, fractions, cfg.seed, proportional)
    names = {g: next(k for k in (*reversed(_links(crops[g].item)), f"item:{crops[g].item.name}") if k)
             for g in set(groups)}
    return splits, [names[g] for g in groups]


def _members(ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, g in enumerate(ids):
        out.setdefault(g, []).append(i)
    return out
