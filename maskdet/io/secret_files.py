"""Passwords and tokens that an operator keeps in a file: readable by its owner only."""

from __future__ import annotations

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
