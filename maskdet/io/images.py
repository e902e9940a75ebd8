"""Reading images as they come: any common format, mode, bit depth and orientation.

Everything downstream works on 8-bit RGB arrays the right way up. Problems
are raised as ``ImageError`` with a short ``reason`` code that reports and the
CLI show, and a message that says what was found.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from maskdet.errors import MaskdetError
from maskdet.io.atomic import write_bytes_atomic

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MAX_FILE_BYTES = 64 * 1024 * 1024  # one image file; a photo is a few MB
MAX_PIXELS = 50_000_000  # larger is a decompression bomb for our purposes, not a photo


class ImageError(MaskdetError, ValueError):
    """An input that is not a usable image; ``reason`` is a short code for reports."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        notes.append("16bit")
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "F":
        notes.append("float")
        arr = np.asarray(img, dtype=np.float64)
        arr = (arr - arr.min()) / max(np.ptp(arr), 1e-12) * 255.0
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        notes.append("alpha")
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("L", "1"):
        notes.append("grayscale")
    elif mode != "RGB":
        notes.append(mode.lower())
    return img.convert("RGB")


def load_rgb(source: str | os.PathLike | bytes, notes: list[str] | None = None, name: str | None = None) -> np.ndarray:
    """Decode ``source`` (a path or the file's bytes) into an (H, W, 3) uint8 RGB array.

    EXIF orientation is applied; grayscale, palette, alpha and 16-bit images are
    converted. ``notes`` (when given) receives what was normalised. ``name``:
    what an error calls the image (default: the path, or "<bytes>" for bytes,
    which have no name of their own: give the upload's or request's name).
    """
    notes = notes if notes is not None else []
    if name is None:
        name = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        try:
            info = Path(source).stat()  # follows a symlink: what would be read
            if not stat.S_ISREG(info.st_mode):  # a FIFO would block forever, /dev/zero never end
                raise ImageError(
                    "not_a_file", f"{name}: not a regular file (a folder, device or pipe); give image files"
                )
            if info.st_size > MAX_FILE_BYTES:
                raise ImageError(
                    "too_large",
                    f"{name}: {info.st_size:,} bytes, more than the {MAX_FILE_BYTES:,} an image file may have",
                )
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ImageError("unreadable", f"{name}: cannot read the file ({exc.strerror or exc})") from None
    if not data:
        raise ImageError("empty", f"{name}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(
                    "too_large",
                    f"{name}: {img.width}x{img.height} pixels is more than the {MAX_PIXELS:,} this tool accepts",
                )
            img.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not_an_image", f"{name}: not an image in any format Pillow reads") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("too_large", f"{name}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageError(reason, f"{name}: the image data is damaged ({exc})") from None
    orientation = img.getexif().get(0x0112, 1)
    if orientation not in (None, 1):
        notes.append("exif_rotated")
        img = ImageOps.exif_transpose(img)
    return np.asarray(_to_rgb(img, notes))


def encode_jpeg(rgb: np.ndarray, quality: int = 95, name: str = "<array>") -> bytes:
    """An RGB array as JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("unencodable", f"{name}: OpenCV could not encode a {rgb.shape} image as JPEG")
    return buf.tobytes()


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = 95) -> bytes:
    """Encode an RGB array as JPEG into ``path``; returns the bytes written."""
    data = encode_jpeg(rgb, quality, str(path))
    write_bytes_atomic(path, data)
    return data


def letterbox(rgb: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float, int, int]:
    """``rgb`` shrunk or grown to fit ``width`` x ``height`` with its aspect ratio
    kept, centred on black. Returns the canvas, the scale, and the left and top
    offsets (image pixel x -> ``x * scale + left``)."""
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((height, width, 3), np.uint8)
    left, top = (width - size[0]) // 2, (height - size[1]) // 2
    canvas[top : top + size[1], left : left + size[0]] = resized
    return canvas, scale, left, top
