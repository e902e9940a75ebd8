"""What the user handed in, as one image per item: the CLI's paths (files,
folders, zip archives, ``-`` for paths on standard input) and the
dashboard's uploads (name and bytes) expand here, the same way, into
``(name, source, error)``: ``source`` is a path or the file's bytes, and an
item that cannot be an image gets its ``error`` (``reason: detail``) instead.
A zip's entries are named ``archive.zip!inner/name.jpg``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from maskdet.io.archives import ArchiveError, is_zip, zip_images
from maskdet.io.images import IMAGE_EXTENSIONS

Item = tuple[str, "str | bytes | None", "str | None"]


def _one(name: str, source: str | bytes) -> Iterator[Item]:
    """A zip archive as its entries (bad ones with their error), anything else as it is."""
    archive = is_zip(source) if isinstance(source, bytes) else Path(source).is_file() and is_zip(Path(source))
    if not (archive or name.lower().endswith(".zip")):
        yield name, source, None
        return
    try:
        for member in zip_images(source if isinstance(source, bytes) else Path(source), label=name):
            yield f"{name}!{member.name}", member.data, member.error
    except ArchiveError as exc:
        yield name, None, f"bad_archive: {exc}"


def lines(stream: Iterable[str]) -> Iterator[str]:
    """Paths one a line (surrounding blanks dropped, empty lines skipped)."""
    return (line.strip() for line in stream if line.strip())


def null_separated(stream) -> Iterator[str]:
    """Paths separated by NUL bytes, as ``find -print0`` writes them, so that a
    path may hold a newline; each is yielded as soon as it has arrived."""
    pending = b""
    for chunk in iter(lambda: stream.read1(65536), b""):
        *done, pending = (pending + chunk).split(b"\0")
        yield from (os.fsdecode(p) for p in done if p)
    if pending:
        yield os.fsdecode(pending)


def expand_paths(paths: Iterable[str], stdin: Iterable[str] = ()) -> Iterator[Item]:
    """Files as given, folders as their images and zips (sorted, recursive),
    zip archives as their images, and ``-`` as the paths from ``stdin``
    (already split: ``lines`` or ``null_separated``)."""
    for given in paths:
        if given == "-":
            for path in stdin:
                yield from _one(path, path)
        elif Path(given).is_dir():
            for p in sorted(Path(given).rglob("*")):
                if p.suffix.lower() in (*IMAGE_EXTENSIONS, ".zip"):
                    yield from _one(str(p), str(p))
        else:
            yield from _one(given, given)


def expand_uploads(files: Iterable[tuple[str, bytes]]) -> Iterator[Item]:
    """Uploaded (name, bytes) pairs: zips as their images, an empty file as an error."""
    for name, data in files:
        if not data:
            yield name, None, "empty: the file has no bytes"
        else:
            yield from _one(name, data)
