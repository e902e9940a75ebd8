"""Images out of zip archives, read in memory and never extracted to disk, so
an entry named ``../../etc/passwd`` cannot write anywhere. Entries that are
unsafe, too big, suspiciously compressed, encrypted or not images come back
as errors with a reason, and the rest of the archive is still read.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from maskdet.errors import MaskdetError
from maskdet.io.images import IMAGE_EXTENSIONS, MAX_FILE_BYTES

MAX_MEMBER_BYTES = MAX_FILE_BYTES  # one image, uncompressed: the limit of a plain file
MAX_TOTAL_BYTES = 1024 * 1024 * 1024  # the whole archive, uncompressed
MAX_RATIO = 200  # uncompressed / compressed; photos barely compress
MAX_MEMBERS = 10_000


class ArchiveError(MaskdetError, ValueError):
    """The archive as a whole cannot be read."""


@dataclass(frozen=True)
class Member:
    """One entry: its bytes, or the reason it was not read."""

    name: str
    data: bytes | None = None
    error: str | None = None


def is_zip(source: Path | bytes) -> bool:
    if isinstance(source, bytes):
        return source[:4] == b"PK\x03\x04"
    return Path(source).suffix.lower() == ".zip"


def _ignored(name: str) -> bool:
    """Folders and the metadata files that archivers add (macOS forks, dotfiles).
    An unsafe name is never ignored: it gets its line."""
    if _unsafe(name):
        return False
    parts = PurePosixPath(name).parts
    return name.endswith("/") or parts[0] == "__MACOSX" or PurePosixPath(name).name.startswith(".")


def _unsafe(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (len(name) > 1 and name[1] == ":")


def zip_images(source: Path | bytes, label: str | None = None) -> Iterator[Member]:
    """Every image of a zip archive (a path or its bytes), in archive order."""
    label = label or (str(source) if not isinstance(source, bytes) else "archive")
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{label}: not a readable zip archive ({exc})") from None
    with archive:
        infos = [i for i in archive.infolist() if not _ignored(i.filename)]
        if len(infos) > MAX_MEMBERS:
            raise ArchiveError(f"{label}: {len(infos)} entries, more than the {MAX_MEMBERS} allowed; split it")
        total = 0
        for info in infos:
            name = info.filename
            if _unsafe(name):
                yield Member(name, error="unsafe_path: absolute or '..' entry name, skipped (nothing is extracted)")
            elif PurePosixPath(name).suffix.lower() not in IMAGE_EXTENSIONS:
                yield Member(
                    name,
                    error=f"not_an_image: {PurePosixPath(name).suffix or 'no'} extension; "
                    f"expected one of {', '.join(sorted(IMAGE_EXTENSIONS))}",
                )
            elif info.flag_bits & 0x1:
                yield Member(name, error="encrypted: password-protected entries are not read")
            elif info.file_size > MAX_MEMBER_BYTES:
                yield Member(
                    name, error=f"too_large: {info.file_size} bytes uncompressed, over {MAX_MEMBER_BYTES} per image"
                )
            elif info.file_size > 1024 * 1024 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                yield Member(
                    name,
                    error=f"zip_bomb: compressed {info.file_size // max(info.compress_size, 1)}:1, "
                    f"over {MAX_RATIO}:1; not decompressed",
                )
            elif total + info.file_size > MAX_TOTAL_BYTES:
                yield Member(
                    name,
                    error=f"too_large: the archive holds over {MAX_TOTAL_BYTES} bytes uncompressed; "
                    "the rest is not read",
                )
                return
            else:
                try:
                    with archive.open(info) as handle:  # headers can lie: never read past the limit
                        data = handle.read(MAX_MEMBER_BYTES + 1)
                except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                    yield Member(name, error=f"corrupt: {exc}")
                    continue
                if len(data) > MAX_MEMBER_BYTES:
                    yield Member(name, error=f"too_large: over {MAX_MEMBER_BYTES} bytes uncompressed")
                    continue
                total += len(data)
                yield Member(name, data=data)
