"""Passwords and tokens that an operator keeps in a file: readable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path

from maskdet.errors import InputError


def read_secret_file(path: str | Path, what: str, min_length: int) -> str:
    """The secret in ``path`` (surrounding whitespace dropped). Refused, with a line
    that names ``what`` and says what to do, when the file is missing, other users
    may read it, or it holds fewer than ``min_length`` characters."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path}: no such file")
    if path.stat().st_mode & 0o077:
        raise InputError(f"{what} {path}: other users may read it; run `chmod 600 {path}`")
    value = path.read_text().strip()
    if len(value) < min_length:
        raise InputError(f"{what} {path}: it holds {len(value)} characters; give at least {min_length}")
    return value


def write_secret_file(path: str | Path, text: str) -> Path:
    """``text`` into ``path``, readable by its owner only from the first byte (created
    0600, never widened by the umask), whole (a temporary file, then a rename)."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    temp.replace(path)
    return path
