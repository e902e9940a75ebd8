"""Zip archives read in memory: every bad entry gets a reason, the rest is read."""

import io
import zipfile

import pytest

from maskdet.io.archives import MAX_RATIO, ArchiveError, zip_images
from tests.helpers import jpeg_bytes
from tests.helpers import zip_bytes as _zip


def test_images_are_read_and_bad_entries_get_reasons(face_rgb):
    face = jpeg_bytes(face_rgb)
    data = _zip(
        {
            "a/face.jpg": face,
            "/etc/abs.jpg": face,
            "b/../../up.png": face,
            "..\\..\\win.jpg": face,
            "readme.md": b"hi",
            "__MACOSX/a/._face.jpg": b"fork",
            ".DS_Store": b"x",
            "folder/": b"",
        }
    )
    members = {m.name: m for m in zip_images(data)}
    assert set(members) == {"a/face.jpg", "/etc/abs.jpg", "b/../../up.png", "..\\..\\win.jpg", "readme.md"}
    assert members["a/face.jpg"].data == face and members["a/face.jpg"].error is None
    assert members["/etc/abs.jpg"].error.startswith("unsafe_path")
    assert members["b/../../up.png"].error.startswith("unsafe_path")
    assert members["..\\..\\win.jpg"].error.startswith("unsafe_path")  # not taken for a dotfile
    assert members["readme.md"].error.startswith("not_an_image")


def test_a_compression_bomb_is_not_decompressed():
    bomb = _zip({"huge.png": b"\0" * (8 * 1024 * 1024)}, zipfile.ZIP_DEFLATED)
    assert len(bomb) * MAX_RATIO < 8 * 1024 * 1024
    (member,) = zip_images(bomb)
    assert member.data is None and member.error.startswith("zip_bomb")


def test_encrypted_and_damaged_entries(face_rgb):
    face = jpeg_bytes(face_rgb)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("secret.jpg", face)
        z.writestr("ok.jpg", face)
    data = bytearray(buf.getvalue())
    # zipfile cannot encrypt: set the "encrypted" flag of the first entry by hand,
    # in its local header (offset 6) and its central directory record (offset 8).
    data[6] |= 0x1
    data[data.find(b"PK\x01\x02") + 8] |= 0x1
    data[data.rfind(face[1000:1016]) + 4] ^= 0xFF  # flip a byte of the second entry: its CRC fails
    secret, ok = zip_images(bytes(data))
    assert secret.error.startswith("encrypted")
    assert ok.error.startswith("corrupt")


def test_not_a_zip_is_an_archive_error():
    with pytest.raises(ArchiveError, match="not a readable zip"):
        list(zip_images(b"PK\x03\x04 this is not really a zip", label="upload.zip"))


def test_the_cli_and_the_dashboard_expand_inputs_alike(face_rgb, tmp_path):
    """One expansion: a zip given as a path (CLI) and uploaded as bytes
    (dashboard) gives the same items; folders recurse; '-' reads paths."""
    from maskdet.io.inputs import expand_paths, expand_uploads, lines

    face = jpeg_bytes(face_rgb)
    data = _zip({"in/a.jpg": face, "notes.txt": b"x"})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "set.zip").write_bytes(data)
    (tmp_path / "sub" / "b.jpg").write_bytes(face)
    (tmp_path / "sub" / "skip.txt").write_text("not an image")
    zipped = str(tmp_path / "sub" / "set.zip")
    from_path = [(n.removeprefix(zipped), s, e) for n, s, e in expand_paths([zipped])]
    from_upload = [(n.removeprefix("set.zip"), s, e) for n, s, e in expand_uploads([("set.zip", data)])]
    assert from_path == from_upload and [e is None for _, _, e in from_path] == [True, False]
    assert from_path[0] == ("!in/a.jpg", face, None) and from_path[1][2].startswith("not_an_image")
    folder = [n for n, _, _ in expand_paths([str(tmp_path)])]
    assert folder == [str(tmp_path / "sub" / "b.jpg"), f"{zipped}!in/a.jpg", f"{zipped}!notes.txt"]
    assert [n for n, _, _ in expand_paths(["-"], stdin=lines([f"{zipped}\n", "\n"]))] == [
        f"{zipped}!in/a.jpg",
        f"{zipped}!notes.txt",
    ]
