"""Writes that are never half-done: the data goes to a temporary path beside
the target, then one rename puts it in place. The one way the project writes
an output file or folder, so that an interrupted run leaves either the old
output or the new one, never a mix."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` for the body to write (a file, or a
    folder it creates); when the body ends, the temporary replaces ``path`` in
    one rename (a folder replaces the old folder whole). On an error it is
    removed and ``path`` stays as it was. When the body wrote nothing,
    ``path`` is left alone. The temporary keeps the suffix, so writers that
    choose a format by extension (figures, videos, CSV) work, and its name
    holds the process id, so two processes never share one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not tmp.exists():
        return
    if tmp.is_dir() and path.is_dir():
        shutil.rmtree(path)  # a rename does not replace a folder that has files in it
    os.replace(tmp, path)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
