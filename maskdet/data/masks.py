"""Render face masks onto real faces from their landmarks (the MaskTheFace method).

A mask is drawn in a frame fixed to the face: ``u`` runs across the face (from
the right cheek to the left one, image left to right on a frontal face) and
``v`` down it, both in pixels, from the top of the nose bridge. The mask region
is the face silhouette, widened a little and carried below the chin, below a
top edge that passes over the nose bridge (worn correctly) or under the nose
or under the lower lip (worn incorrectly) and falls towards the cheeks. A mask
hanging from one ear loop is drawn on the face turned about the mask's corner
on the side that still holds, so it leaves the face's outline on the loose side.

Fabric, pleats, seams, prints and ear loops are drawn procedurally in that
frame, then lit by the face's own light (the smoothed luminance of the skin
under the mask) so that the mask sits in the photo instead of on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maskdet.data import landmarks as lm

STYLES = ("surgical", "cloth", "kn95")
# "correct" makes with_mask, the others mask_weared_incorrect: under the nose, on
# the chin, or hanging from one ear loop (and under the nose).
PLACEMENTS = ("correct", "nose_out", "chin", "one_loop")

FACE_SILHOUETTE = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
                   377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)

SURGICAL_COLOURS = {"light blue": (150, 190, 225), "white": (236, 238, 240), "black": (38, 38, 42),
                    "mint": (160, 215, 200), "pink": (235, 180, 195)}
CLOTH_COLOURS = {"navy": (35, 45, 90), "black": (30, 30, 32), "grey": (120, 122, 128), "red": (170, 35, 45),
                 "beige": (205, 185, 155), "olive": (95, 105, 60), "denim": (70, 100, 145),
                 "burgundy": (110, 30, 50), "white": (225, 225, 220), "teal": (30, 120, 125)}
KN95_COLOURS = {"white": (240, 240, 236), "off-white": (228, 226, 218), "black": (40, 40, 44), "grey": (170, 172, 175)}


@dataclass(frozen=True)
class MaskSpec:
    """What to draw: a style, a colour name, a placement, and for cloth a print."""

    style: str
    colour: str
    placement: str
    pattern: str = "solid"  # cloth only: solid, dots, stripes, checks, floral
    # Worn correctly: where the top edge peaks, as a share of the way from the
    # nose bridge to the nose tip. Real masks sit anywhere from just under the
    # eyes to half-way down the nose; one fixed height taught the classifier to
    # call a mask worn high (common in real photos) "incorrect".
    height: float = 0.38
    # Worn correctly: how far the top edge falls from its peak to the cheeks, in
    # nose lengths; a mask pulled up under the eyes has an almost straight edge.
    drop: float = 0.67
    # Hanging from one ear loop: degrees the mask turns about its corner on the
    # side that still holds (positive: the loop on the image's left holds).
    tilt: float = 0.0

    @property
    def worn_correctly(self) -> bool:
        return self.placement == "correct"


def random_spec(rng: np.random.Generator, placement: str, style: str | None = None) -> MaskSpec:
    """Draw a mask of a given placement, with the variety real masks have."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    style = style or str(rng.choice(STYLES, p=[0.45, 0.35, 0.20]))
    shape = dict(height=float(rng.uniform(0.1, 0.55)), drop=float(rng.uniform(0.25, 0.75)),
                 tilt=float(rng.choice([-1, 1]) * rng.uniform(10, 25)) if placement == "one_loop" else 0.0)
    if style == "surgical":
        colour = str(rng.choice(list(SURGICAL_COLOURS), p=[0.55, 0.2, 0.15, 0.05, 0.05]))
        return MaskSpec(style, colour, placement, **shape)
    if style == "kn95":
        colour = str(rng.choice(list(KN95_COLOURS), p=[0.6, 0.15, 0.15, 0.1]))
        return MaskSpec(style, colour, placement, **shape)
    if style == "cloth":
        pattern = str(rng.choice(["solid", "dots", "stripes", "checks", "floral"], p=[0.5, 0.12, 0.13, 0.12, 0.13]))
        return MaskSpec(style, str(rng.choice(list(CLOTH_COLOURS))), placement, pattern, **shape)
    raise ValueError(f"style must be one of {STYLES}, got {style!r}")


# Where the jaw meets the cheek at the height of the mouth, on the image's left and
# right: a mask's corner, where the loop that still holds keeps it.
JAW_AT_MOUTH = (58, 288)


def tilted(mesh: lm.FaceMesh, tilt: float) -> lm.FaceMesh:
    """``mesh`` turned by ``tilt`` degrees about the jaw at the height of the mouth
    (the image's left side for a positive tilt): where a mask hangs from the loop
    that still holds."""
    if not tilt:
        return mesh
    pivot = mesh.points[JAW_AT_MOUTH[0] if tilt > 0 else JAW_AT_MOUTH[1], :2]
    a = np.deg2rad(tilt)
    turn = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])  # y down: positive turns clockwise
    points = mesh.points.copy()
    points[:, :2] = (points[:, :2] - pivot) @ turn.T + pivot
    return lm.FaceMesh(points=points, score=mesh.score)


class FaceFrame:
    """Pixel coordinates (u across, v down) in a frame fixed to the face."""

    def __init__(self, mesh: lm.FaceMesh):
        p = mesh.points[:, :2].astype(np.float64)
        across = p[lm.LEFT_CHEEK_SIDE] - p[lm.RIGHT_CHEEK_SIDE]
        self.ux = across / np.linalg.norm(across)
        self.vy = np.array([-self.ux[1], self.ux[0]])  # perpendicular, pointing down the face
        self.origin = p[lm.NOSE_BRIDGE_TOP]
        self.points = p
        self.width = float(np.linalg.norm(across))

    def uv(self, xy: np.ndarray) -> np.ndarray:
        d = np.asarray(xy, dtype=np.float64) - self.origin
        return np.stack([d @ self.ux, d @ self.vy], axis=-1)

    def at(self, index: int) -> np.ndarray:
        return self.uv(self.points[index])


def _top_edge(frame: FaceFrame, placement: str, height: float = 0.38,
              drop: float = 0.67) -> tuple[float, float, float]:
    """(u of the peak, v of the peak, v at the cheeks) of the mask's top edge;
    ``height`` and ``drop`` shape a correctly worn mask's edge (see MaskSpec)."""
    bridge, tip = frame.at(lm.NOSE_BRIDGE_TOP), frame.at(lm.NOSE_TIP)
    sub, lip_low = frame.at(lm.SUBNASALE), frame.at(lm.LOWER_LIP_BOTTOM)
    nose_len = max(tip[1] - bridge[1], 1.0)
    if placement == "correct":
        peak = bridge + height * (tip - bridge)
        cheeks = peak[1] + drop * nose_len
    elif placement in ("nose_out", "one_loop"):  # one loop off: the mask slides under the nose too
        peak = sub + np.array([0.0, 0.14 * nose_len])
        cheeks = sub[1] + 0.36 * nose_len
    else:  # chin: nose and mouth left out
        peak = lip_low + np.array([0.0, 0.10 * nose_len])
        cheeks = lip_low[1] + 0.25 * nose_len
    return float(peak[0]), float(peak[1]), float(cheeks)


def mask_region(shape: tuple[int, int], mesh: lm.FaceMesh, placement: str,
                height: float = 0.38, drop: float = 0.67) -> tuple[np.ndarray, np.ndarray]:
    """Boolean region the mask covers, and the (u, v) face frame of every pixel."""
    return below_edge(shape, mesh, *_top_edge(FaceFrame(mesh), placement, height, drop))


def below_edge(shape: tuple[int, int], mesh: lm.FaceMesh, peak_u: float, peak_v: float,
               cheek_v: float) -> tuple[np.ndarray, np.ndarray]:
    """The lower face (its silhouette, widened and carried under the chin) below an
    edge through (``peak_u``, ``peak_v``) that reaches ``cheek_v`` at the cheeks,
    in the face frame; and the (u, v) of every pixel."""
    frame = FaceFrame(mesh)
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    uv = frame.uv(np.stack([xs, ys], axis=-1).reshape(-1, 2)).reshape(h, w, 2)
    # The silhouette, widened by 4 % and carried 10 % of its height below the chin:
    # a mask sits off the skin and wraps under the jaw.
    sil = frame.uv(frame.points[list(FACE_SILHOUETTE)])
    centre = sil.mean(axis=0)
    sil = centre + (sil - centre) * np.array([1.04, 1.0])
    chin_v = frame.at(lm.CHIN)[1]
    below = sil[:, 1] > centre[1]
    sil[below, 1] += 0.10 * (chin_v - centre[1]) * ((sil[below, 1] - centre[1]) / (chin_v - centre[1])) ** 2
    sil_xy = frame.origin + sil[:, :1] * frame.ux + sil[:, 1:] * frame.vy
    face = np.zeros(shape, np.uint8)
    cv2.fillPoly(face, [np.round(sil_xy * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
    half = frame.width / 2
    rel = np.clip(np.abs(uv[..., 0] - peak_u) / half, 0, 1.2)
    top = peak_v + (cheek_v - peak_v) * rel ** 1.6
    return (face > 0) & (uv[..., 1] >= top), uv


def _fabric(h: int, w: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Fine multiplicative weave: noise plus a faint cross-hatch."""
    noise = rng.normal(0, 1, (h, w)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 0.7)
    period = rng.uniform(2.5, 4.0)
    # separable: the same products as on a full grid, without building one
    hatch = np.sin(np.arange(h)[:, None] * 2 * np.pi / period) * np.sin(np.arange(w)[None, :] * 2 * np.pi / period)
    return 1 + strength * (0.6 * noise / (noise.std() + 1e-6) + 0.4 * hatch).astype(np.float32)


def _print_pattern(spec: MaskSpec, s: np.ndarray, t: np.ndarray, rng: np.random.Generator,
                   base: np.ndarray, scale: float) -> np.ndarray:
    """Cloth prints in the face frame (so they follow the face, not the image axes)."""
    colour = np.tile(base, s.shape + (1,)).astype(np.float32)
    accent = np.array(rng.choice(list(CLOTH_COLOURS.values())), np.float32)
    if np.abs(accent - base).sum() < 90:
        accent = 255 - base
    if spec.pattern == "dots":
        period = scale * rng.uniform(0.09, 0.15)
        cu, cv_ = (s % period) - period / 2, (t % period) - period / 2
        colour[np.hypot(cu, cv_) < period * 0.22] = accent
    elif spec.pattern == "stripes":
        period = scale * rng.uniform(0.07, 0.14)
        angle = rng.uniform(0, np.pi)
        along = s * np.cos(angle) + t * np.sin(angle)
        colour[(along % period) < period * 0.4] = accent
    elif spec.pattern == "checks":
        period = scale * rng.uniform(0.08, 0.14)
        a, b = (s % period) < period / 2, (t % period) < period / 2
        colour[a ^ b] = 0.55 * colour[a ^ b] + 0.45 * accent
    elif spec.pattern == "floral":
        for _ in range(int(rng.integers(25, 45))):
            cu, cv_ = rng.uniform(s.min(), s.max()), rng.uniform(t.min(), t.max())
            r = scale * rng.uniform(0.02, 0.05)
            # A petal lies within 1.35 r of its centre: test only the pixels there
            # (the same arithmetic on fewer pixels; the arctan2 was most of the time).
            near = np.nonzero((np.abs(s - cu) < 1.36 * r) & (np.abs(t - cv_) < 1.36 * r))
            ds, dt = s[near] - cu, t[near] - cv_
            inside = np.hypot(ds, dt) < r * (1 + 0.35 * np.cos(5 * np.arctan2(dt, ds)))
            colour[near[0][inside], near[1][inside]] = np.array(rng.choice(list(CLOTH_COLOURS.values())), np.float32)
    return colour


def render_mask(rgb: np.ndarray, mesh: lm.FaceMesh, spec: MaskSpec, rng: np.random.Generator) -> np.ndarray:
    """Return a copy of ``rgb`` (uint8) with a mask drawn on the face of ``mesh``."""
    out = rgb.copy()
    pts = mesh.points[:, :2]
    x1, y1 = np.floor(pts.min(axis=0) - 0.3 * np.ptp(pts, axis=0)).astype(int)
    x2, y2 = np.ceil(pts.max(axis=0) + 0.3 * np.ptp(pts, axis=0)).astype(int)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, rgb.shape[1]), min(y2, rgb.shape[0])
    if x2 - x1 < 8 or y2 - y1 < 8:
        return out
    window = out[y1:y2, x1:x2].astype(np.float32)
    local = tilted(lm.FaceMesh(points=mesh.points - np.array([x1, y1, 0], np.float32), score=mesh.score), spec.tilt)
    region, uv = mask_region(window.shape[:2], local, spec.placement, spec.height, spec.drop)
    if region.sum() < 20:
        return out
    frame = FaceFrame(local)
    scale = frame.width
    u, v = uv[..., 0], uv[..., 1]
    vs = v[region]
    s = u / scale  # across, in face widths
    t = (v - vs.min()) / max(float(np.ptp(vs)), 1.0)  # 0 at the top edge of the mask, 1 at its bottom
    h, w = region.shape

    palette = {"surgical": SURGICAL_COLOURS, "cloth": CLOTH_COLOURS, "kn95": KN95_COLOURS}[spec.style]
    base = np.array(palette[spec.colour], np.float32) * rng.uniform(0.93, 1.05, 3).astype(np.float32)
    colour = np.tile(base, (h, w, 1))
    shade = np.ones((h, w), np.float32)
    if spec.style == "surgical":
        # Three horizontal pleats: each a ramp from light to a dark fold line.
        n = 3
        phase = (t * n + rng.uniform(-0.1, 0.1)) % 1.0
        shade *= (1.0 - 0.22 * phase ** 2).astype(np.float32)
        shade *= _fabric(h, w, rng, 0.025)
        # The nose wire: a stiffer, slightly lighter band along the top.
        shade[t < 0.06] *= 1.05
    elif spec.style == "cloth":
        if spec.pattern != "solid":
            colour = _print_pattern(spec, s, (v / scale), rng, base, 1.0)
        shade *= _fabric(h, w, rng, 0.06)
    else:  # kn95: a vertical centre seam and a sealed border
        peak_u = _top_edge(frame, spec.placement, spec.height, spec.drop)[0]
        seam = np.abs(u - peak_u) < max(1.0, 0.008 * scale)
        shade[seam] *= 0.78
        shade *= (1.0 - 0.10 * np.clip(np.abs(u - peak_u) / (0.5 * scale), 0, 1)).astype(np.float32)
        shade *= _fabric(h, w, rng, 0.02)
    # A mask bulges out of the face: darker towards the cheeks and the chin.
    curve = 1.0 - 0.22 * np.clip(np.abs(s - s[region].mean()) / 0.5, 0, 1) ** 2 - 0.12 * np.clip(t - 0.7, 0, 1)
    shade *= curve.astype(np.float32)

    # The face's own light: smoothed luminance of the skin under the mask,
    # relative to its bright part, so a shadowed cheek stays shadowed.
    gray = cv2.cvtColor(window.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    sigma = max(2.0, 0.08 * scale)
    lum = cv2.GaussianBlur(np.where(region, gray, 0), (0, 0), sigma)
    wgt = cv2.GaussianBlur(region.astype(np.float32), (0, 0), sigma)
    lum = lum / np.maximum(wgt, 1e-3)
    ref = np.percentile(gray[region], 80) + 1e-3
    light = np.clip(lum / ref, 0.35, 1.15) ** 0.8
    rendered = colour * (shade * light)[..., None]

    # Crisp but anti-aliased edges, plus a soft contact shadow on the skin just outside.
    alpha = cv2.GaussianBlur(region.astype(np.float32), (0, 0), max(0.6, 0.004 * scale))
    halo = cv2.GaussianBlur(region.astype(np.float32), (0, 0), max(1.0, 0.02 * scale))
    window *= (1.0 - 0.25 * np.clip(halo - alpha, 0, 1))[..., None]
    blended = window * (1 - alpha[..., None]) + rendered * alpha[..., None]
    if spec.style == "surgical":
        blended = _ear_loops(blended, frame, spec, region, rng)
    blended += rng.normal(0, 2.0, blended.shape).astype(np.float32) * alpha[..., None]
    out[y1:y2, x1:x2] = np.clip(blended, 0, 255).astype(np.uint8)
    return out


def _ear_loops(img: np.ndarray, frame: FaceFrame, spec: MaskSpec, region: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """Thin elastic loops from the mask's side corners to the ears, where the ear side shows."""
    ys, xs = np.nonzero(region)
    uv = frame.uv(np.stack([xs, ys], axis=-1))
    colour = tuple(float(c) * 0.92 for c in SURGICAL_COLOURS[spec.colour])
    thick = max(1, int(round(0.008 * frame.width)))
    nose_u = frame.at(lm.NOSE_TIP)[0]
    for pick, ear in ((np.argmin, lm.RIGHT_CHEEK_SIDE), (np.argmax, lm.LEFT_CHEEK_SIDE)):
        ear_uv = frame.at(ear)
        if abs(ear_uv[0] - nose_u) < 0.3 * frame.width:
            continue  # that side of the face turns away from the camera: its loop is hidden
        if spec.tilt and (ear == lm.RIGHT_CHEEK_SIDE) != (spec.tilt > 0):
            continue  # the loop that came off the ear
        i = pick(uv[:, 0])
        corner = np.array([xs[i], ys[i]], float)
        ear_xy = frame.points[ear]
        for lift in (-0.08, 0.10):
            start = corner + frame.vy * lift * frame.width
            end = ear_xy + frame.vy * lift * 0.5 * frame.width
            cv2.line(img, tuple(np.round(start).astype(int)), tuple(np.round(end).astype(int)),
                     colour, thick, cv2.LINE_AA)
    return img
