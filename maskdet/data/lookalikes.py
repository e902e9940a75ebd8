"""What a face carries that is not a mask: beards, moustaches, glasses, sunglasses.

A classifier that has only seen bare faces clean-shaven and eyes free learns
"something dark over the mouth or the eyes" as "mask": on real photos a white
beard or sunglasses read as ``with_mask`` and a moustache as
``mask_weared_incorrect``. The default data can draw these on faces from their
landmarks, as the masks are drawn (``data.sample.facial_hair`` and
``data.sample.eyewear``): facial hair on bare faces only (a mask would hide it),
eyewear on faces of every class (so that it says nothing about the class).

Hair is a stroke texture (noise smeared along the face's vertical axis) in a
hair colour, lit by the face's own light; eyewear is a pair of rims, with dark
lenses for sunglasses.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskdet.data import landmarks as lm
from maskdet.data.masks import FaceFrame, below_edge

HAIR = ("beard", "stubble", "goatee", "moustache")
EYEWEAR = ("sunglasses", "glasses")
KINDS = HAIR + EYEWEAR

HAIR_COLOURS = ((28, 24, 22), (58, 42, 32), (96, 72, 52), (130, 90, 55), (150, 148, 145), (212, 208, 202))
# The upper lip's outer contour, corner to corner, then the base of the nose back:
# the region a moustache fills.
UPPER_LIP_TO_NOSE = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 327, 326, 2, 97, 98)
MOUTH_CORNERS = (61, 291)
# Each eye's outer and inner corner, then its upper and lower lid.
RIGHT_EYE = (33, 133, 159, 145)
LEFT_EYE = (263, 362, 386, 374)


def random_lookalike(rng: np.random.Generator, bare: bool, hair_share: float, eyewear_share: float) -> str | None:
    """What a face of the default data wears besides (or instead of) a mask: facial
    hair on ``hair_share`` of the bare faces, eyewear on ``eyewear_share`` of all.
    A share of 0 draws nothing from ``rng``, so the rest of the data stays as it is."""
    if bare and hair_share and rng.random() < hair_share:
        return str(rng.choice(HAIR, p=[0.35, 0.2, 0.15, 0.3]))
    if eyewear_share and rng.random() < eyewear_share:
        return str(rng.choice(EYEWEAR))
    return None


def draw_lookalike(rgb: np.ndarray, mesh: lm.FaceMesh, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``rgb`` (uint8) with ``kind`` drawn on the face of ``mesh``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    out = rgb.astype(np.float32)
    if kind in EYEWEAR:
        _eyewear(out, mesh, dark=kind == "sunglasses", rng=rng)
    else:
        region = _hair_region(rgb.shape[:2], mesh, kind)
        density = rng.uniform(0.3, 0.45) if kind == "stubble" else rng.uniform(0.75, 0.95)
        _hair(out, region, mesh, density, rng)
    return np.clip(out, 0, 255).astype(np.uint8)


def _hair_region(shape: tuple[int, int], mesh: lm.FaceMesh, kind: str) -> np.ndarray:
    frame = FaceFrame(mesh)
    sub, tip = frame.at(lm.SUBNASALE), frame.at(lm.NOSE_TIP)
    lip_low, chin = frame.at(lm.LOWER_LIP_BOTTOM), frame.at(lm.CHIN)
    nose_len = max(tip[1] - frame.at(lm.NOSE_BRIDGE_TOP)[1], 1.0)
    pts = mesh.points[:, :2]
    moustache = np.zeros(shape, np.uint8)
    lip = pts[list(UPPER_LIP_TO_NOSE)].copy()
    lip[[0, 10]] += frame.vy * 0.08 * nose_len  # the ends droop past the mouth corners
    cv2.fillPoly(moustache, [np.round(lip * 4).astype(np.int32)], 1, cv2.LINE_8, shift=2)
    if kind == "moustache":
        return moustache > 0
    if kind == "goatee":
        region, uv = below_edge(shape, mesh, float(lip_low[0]), float(lip_low[1]), float(lip_low[1]))
        near_chin = np.abs(uv[..., 0] - chin[0]) < 0.22 * frame.width
        return (region & near_chin) | (moustache > 0)
    # A full beard (and stubble): the jaw from the sideburns down, the lips left free.
    region, _ = below_edge(shape, mesh, float(sub[0]), float(sub[1]), float(sub[1] - 0.5 * nose_len))
    lips = np.zeros(shape, np.uint8)
    mouth = pts[[*MOUTH_CORNERS, lm.UPPER_LIP_TOP, lm.LOWER_LIP_BOTTOM]]
    centre = mouth.mean(axis=0)
    half_w = np.linalg.norm(mouth[1] - mouth[0]) / 2
    half_h = np.linalg.norm(mouth[3] - mouth[2]) / 2
    angle = float(np.degrees(np.arctan2(frame.ux[1], frame.ux[0])))
    cv2.ellipse(lips, ((float(centre[0]), float(centre[1])), (float(1.9 * half_w), float(1.6 * half_h)), angle), 1, -1)
    return (region | (moustache > 0)) & (lips == 0)


def _hair(out: np.ndarray, region: np.ndarray, mesh: lm.FaceMesh, density: float, rng: np.random.Generator) -> None:
    """Hair strokes over ``region`` of ``out`` (float RGB, changed in place)."""
    if region.sum() < 10:
        return
    ys, xs = np.nonzero(region)
    y1, y2, x1, x2 = max(ys.min() - 4, 0), ys.max() + 5, max(xs.min() - 4, 0), xs.max() + 5
    win, reg = out[y1:y2, x1:x2], region[y1:y2, x1:x2].astype(np.float32)
    width = FaceFrame(mesh).width
    noise = rng.normal(0, 1, reg.shape).astype(np.float32)
    strokes = cv2.GaussianBlur(noise, (0, 0), sigmaX=max(0.4, 0.004 * width), sigmaY=max(1.2, 0.02 * width))
    strokes = np.clip(0.5 + 0.5 * strokes / (strokes.std() + 1e-6), 0, 1)
    colour = np.array(HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))], np.float32)
    gray = cv2.cvtColor(np.clip(win, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    light = np.clip(cv2.GaussianBlur(gray, (0, 0), max(2.0, 0.08 * width)) / (np.percentile(gray, 80) + 1e-3),
                    0.4, 1.15)
    hair = colour * (0.75 + 0.5 * strokes)[..., None] * light[..., None]
    edge = cv2.GaussianBlur(reg, (0, 0), max(0.8, 0.02 * width))  # hair thins out at its edges
    alpha = np.clip(edge * density * (0.6 + 0.6 * strokes), 0, 1)[..., None]
    out[y1:y2, x1:x2] = win * (1 - alpha) + hair * alpha


def _eyewear(out: np.ndarray, mesh: lm.FaceMesh, dark: bool, rng: np.random.Generator) -> None:
    """Two rims on a bridge, temples to the cheek sides; dark lenses when ``dark``."""
    pts = mesh.points[:, :2]
    frame = FaceFrame(mesh)
    angle = float(np.degrees(np.arctan2(frame.ux[1], frame.ux[0])))
    rim = tuple(float(c) for c in rng.choice([(20, 20, 22), (70, 50, 35), (150, 130, 90), (180, 180, 185)]))
    thick = max(1, int(round(0.018 * frame.width)))
    lenses = np.zeros(out.shape[:2], np.uint8)
    inner = []
    for corners, side in ((RIGHT_EYE, lm.RIGHT_CHEEK_SIDE), (LEFT_EYE, lm.LEFT_CHEEK_SIDE)):
        outer, inner_c = pts[corners[0]], pts[corners[1]]
        centre = (outer + inner_c) / 2 - frame.vy * 0.05 * frame.width
        half_w = np.linalg.norm(outer - inner_c) * rng.uniform(0.75, 0.9)
        half_h = half_w * rng.uniform(0.6, 0.8)
        ellipse = ((float(centre[0]), float(centre[1])), (float(2 * half_w), float(2 * half_h)), angle)
        cv2.ellipse(lenses, ellipse, 1, -1)
        cv2.ellipse(out, ellipse, rim, thick, cv2.LINE_AA)
        edge = centre + (outer - inner_c) / np.linalg.norm(outer - inner_c) * half_w
        cv2.line(out, tuple(np.round(edge).astype(int)), tuple(np.round(pts[side] - frame.vy * 0.02 * frame.width).astype(int)),
                 rim, thick, cv2.LINE_AA)
        inner.append(centre - (outer - inner_c) / np.linalg.norm(outer - inner_c) * half_w)
    cv2.line(out, tuple(np.round(inner[0]).astype(int)), tuple(np.round(inner[1]).astype(int)), rim, thick, cv2.LINE_AA)
    if dark:
        tint = np.array(rng.choice([(18, 18, 20), (40, 30, 20), (20, 35, 30), (45, 45, 50)]), np.float32)
        alpha = cv2.GaussianBlur(lenses.astype(np.float32), (0, 0), 0.8)[..., None] * rng.uniform(0.82, 0.95)
        out[:] = out * (1 - alpha) + tint * alpha
