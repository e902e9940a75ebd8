"""A rendered walk-through clip with its ground truth, for measuring tracking,
counting and label flicker rather than describing them: people (the rendered
crops of the built-in data, one person per walker) cross a 640x480 frame in
two lanes, one after another in each lane, and some put a mask on or take it
off a third of the way across. Every frame's truth is known: who is where, and
wearing what.

Each person is counted under the label worn for most of the walk (the last
two thirds: the label after the change), the rule ``FaceTracker.counts``
follows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from maskdet import LABELS
from maskdet.io.images import load_rgb

CHANGES = {"with_mask": "without_mask", "without_mask": "with_mask", "mask_weared_incorrect": "with_mask"}


@dataclass
class Clip:
    frames: list[np.ndarray]  # RGB, height x width x 3
    truth: pd.DataFrame  # frame (1 first), person, x1, y1, x2, y2, label: one row per visible face
    fps: float

    def people(self) -> dict[str, int]:
        """People per class, each under the label worn for most of its frames."""
        held = self.truth.groupby("person")["label"].agg(lambda s: s.value_counts().index[0])
        return {label: int((held == label).sum()) for label in LABELS}

    def write(self, path: Path) -> Path:
        """The clip as an mp4 video (what ``maskdet video`` reads)."""
        height, width = self.frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
        for rgb in self.frames:
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        writer.release()
        return path


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A wall and a floor with some texture: not a flat colour the detector could not be fooled by."""
    ys = np.linspace(0, 1, height)[:, None, None]
    top, bottom = rng.uniform(90, 200, 3), rng.uniform(40, 140, 3)
    image = top * (1 - ys) + bottom * ys + np.zeros((height, width, 3))
    texture = cv2.GaussianBlur(rng.normal(0, 18, (height, width, 3)), (0, 0), 3)
    return np.clip(image + texture, 0, 255).astype(np.uint8)


def render_clip(
    crops: pd.DataFrame,
    root: Path,
    people: int = 8,
    size: tuple[int, int] = (640, 480),
    face: int = 110,
    walk_frames: int = 75,
    change_share: float = 0.5,
    fps: float = 25.0,
    seed: int = 0,
) -> Clip:
    """``crops``: the built-in data's crops table (file, label, person; files
    under ``root``). ``people`` walkers, each ``walk_frames`` long, every
    second one in the lower lane and going the other way; ``change_share`` of
    them change their mask a third of the way across."""
    rng = np.random.default_rng(seed)
    width, height = size
    by_person = {p: g for p, g in crops.groupby("person")}
    names = sorted(by_person)
    if not names:
        raise ValueError("the crops table has no person: render the built-in data first (dvc repro sample)")
    lanes = [height // 4 - face // 2, 3 * height // 4 - face // 2]
    gap = walk_frames + 10  # one walker at a time in a lane
    walkers = []
    for i in range(people):
        group = by_person[names[i % len(names)]]
        first = rng.choice([label for label in LABELS if (group["label"] == label).any()])
        then = CHANGES[first] if rng.random() < change_share and (group["label"] == CHANGES[first]).any() else first
        look = {label: load_rgb(root / group[group["label"] == label]["file"].iloc[0]) for label in {first, then}}
        look = {label: cv2.resize(rgb, (face, face), interpolation=cv2.INTER_AREA) for label, rgb in look.items()}
        start = (i // 2) * gap + (i % 2) * (gap // 2)
        walkers.append((i + 1, lanes[i % 2], i % 2 == 1, start, first, then, look))
    total = max(w[3] for w in walkers) + walk_frames + 5
    background = _background(width, height, rng)
    frames, rows = [], []
    for n in range(total):
        rgb = background.astype(np.float32)
        for person, y, leftwards, start, first, then, look in walkers:
            step = n - start
            if not 0 <= step < walk_frames:
                continue
            along = step / (walk_frames - 1)
            x = int(round(10 + (width - face - 20) * ((1 - along) if leftwards else along)))
            label = first if step < walk_frames // 3 else then
            rgb[y : y + face, x : x + face] = look[label]
            rows.append((n + 1, person, x, y, x + face, y + face, label))
        rgb += rng.normal(0, 3, rgb.shape)  # sensor noise: no two frames alike
        frames.append(np.clip(rgb, 0, 255).astype(np.uint8))
    truth = pd.DataFrame(rows, columns=["frame", "person", "x1", "y1", "x2", "y2", "label"])
    return Clip(frames, truth, fps)
