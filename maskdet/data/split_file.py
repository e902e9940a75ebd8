"""A split read from a file instead of drawn: ``data.split_from``.

Which photos land in the test split moves the figures of a small real set
more than most settings do (on 596 Kaggle street photos, up to 0.05 of
mAP@0.5 between two splits at one setting: docs/experiment-log.md). The
drawn split follows the crops (their perceptual hashes link near
duplicates), so a data-side setting such as ``data.crop_padding`` also
changes which photos are tested. Two settings are compared on the same test
faces by giving both runs one split file: the ``manifest.csv`` of an earlier
data stage (``data/processed/manifest.csv``) copied into ``data/splits/``,
or any CSV with the columns ``source`` (the face, as the manifest names it:
``images/photo.png#x1,y1,x2,y2`` for a VOC face) and ``split``.

A face the file lists goes to the side it names; a face it does not list
(one that an earlier, stricter ``min_size`` dropped, say) goes with its
photo's faces. A face of a photo the file does not know at all stops the
stage with the faces named: the file was made from other data.
"""

from __future__ import annotations

import csv
from pathlib import Path

from maskdet.data.split import SPLITS
from maskdet.errors import MaskdetError
from maskdet.paths import SPLITS_DIR

REQUIRED = ("source", "split")


class SplitFileError(MaskdetError, ValueError):
    """The split file is missing, malformed, or does not cover the data."""


def read_split_file(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The side of each face (by its ``source`` name) and of each photo (by
    the ``photo`` column, where the file has one)."""
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
            if missing:
                raise SplitFileError(
                    f"{path}: data.split_from needs the columns {', '.join(REQUIRED)} (missing: {', '.join(missing)});"
                    " a data stage's data/processed/manifest.csv has them"
                )
            by_face, by_photo = {}, {}
            for line, row in enumerate(reader, start=2):
                side = row["split"]
                if side not in SPLITS:
                    raise SplitFileError(f"{path}, line {line}: split {side!r} is not one of {', '.join(SPLITS)}")
                by_face[row["source"]] = side
                photo = row.get("photo") or ""
                if photo:
                    if by_photo.setdefault(photo, side) != side:
                        raise SplitFileError(
                            f"{path}, line {line}: photo {photo!r} has faces on two sides"
                            f" ({by_photo[photo]} and {side}); every face of a photo stays on one side"
                        )
    except FileNotFoundError:
        raise SplitFileError(f"{path}: no such file (data.split_from); put the split file in {SPLITS_DIR}/") from None
    return by_face, by_photo


def sides_from_file(names: list[str], photos: list[str | None], path: Path) -> tuple[list[str], int]:
    """The side of each face (``names``, with its ``photos``) as the file at
    ``path`` gives it, and how many faces went with their photo because the
    file does not list them."""
    by_face, by_photo = read_split_file(path)
    sides, unknown, by_photo_count = [], [], 0
    for name, photo in zip(names, photos):
        if name in by_face:
            sides.append(by_face[name])
        elif photo and photo in by_photo:
            sides.append(by_photo[photo])
            by_photo_count += 1
        else:
            unknown.append(name)
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise SplitFileError(
            f"{path}: data.split_from does not place {len(unknown)} of the {len(names)} faces of data.path"
            f" ({shown}); make the file from a data stage run over the same photos (its"
            " data/processed/manifest.csv), or set data.split_from to null to draw the split"
        )
    return sides, by_photo_count
