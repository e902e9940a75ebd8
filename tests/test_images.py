import io

import numpy as np
import pytest
from PIL import Image

from maskdet.io.images import ImageError, load_rgb
from tests.helpers import jpeg_bytes


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_grayscale_rgba_and_16bit_become_8bit_rgb(face_rgb):
    small = face_rgb[::8, ::8]
    notes = []
    gray = load_rgb(_png(Image.fromarray(small).convert("L")), notes)
    assert gray.shape == small.shape and gray.dtype == np.uint8 and notes == ["grayscale"]
    notes = []
    rgba = np.dstack([small, np.full(small.shape[:2], 255, np.uint8)])
    assert np.array_equal(load_rgb(_png(Image.fromarray(rgba)), notes), small) and notes == ["alpha"]
    notes = []
    sixteen = small[..., 0].astype(np.uint16) * 257
    out = load_rgb(_png(Image.fromarray(sixteen)), notes)
    assert notes == ["16bit"] and out.dtype == np.uint8
    assert np.abs(out[..., 0].astype(int) - small[..., 0]).max() <= 1


def test_exif_orientation_is_applied(face_rgb):
    small = face_rgb[::8, ::8]
    img = Image.fromarray(small)
    exif = img.getexif()
    exif[0x0112] = 6  # stored sideways: "rotate 90 CW to view"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=95)
    notes = []
    out = load_rgb(buf.getvalue(), notes)
    assert notes == ["exif_rotated"]
    assert out.shape[:2] == (small.shape[1], small.shape[0])


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"this is a text file, not a jpeg" * 10, "not_an_image"),
    ],
)
def test_non_images_are_named(data, reason):
    with pytest.raises(ImageError) as err:
        load_rgb(data)
    assert err.value.reason == reason


def test_truncated_jpeg_is_named(face_rgb):
    data = jpeg_bytes(face_rgb)
    with pytest.raises(ImageError) as err:
        load_rgb(data[: len(data) // 2])
    assert err.value.reason == "truncated"


def test_decompression_bomb_is_refused_before_decoding():
    data = _png(Image.new("1", (9000, 9000)))
    with pytest.raises(ImageError) as err:
        load_rgb(data)
    assert err.value.reason == "too_large" and "9000x9000" in str(err.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ImageError, match="nope.jpg") as err:
        load_rgb(tmp_path / "nope.jpg")
    assert err.value.reason == "unreadable"


def test_only_regular_files_of_bounded_size_are_read(tmp_path):
    """A FIFO named like an image would block the run forever, a link to
    /dev/zero would never end, a huge sparse file would fill memory: each is
    refused from its file status, before a byte is read."""
    import os

    from maskdet.io.images import MAX_FILE_BYTES

    fifo = tmp_path / "b.jpg"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    sparse = tmp_path / "sparse.jpg"
    with open(sparse, "wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    for path, reason in ((fifo, "not_a_file"), (zero, "not_a_file"), (sparse, "too_large")):
        with pytest.raises(ImageError) as err:
            load_rgb(path)
        assert err.value.reason == reason and str(path) in str(err.value)


def test_an_error_on_bytes_names_the_image_it_was_given():
    from maskdet.io.images import ImageError, load_rgb

    with pytest.raises(ImageError, match="^upload.jpg: ") as caught:
        load_rgb(b"not an image", name="upload.jpg")
    assert "<bytes>" not in str(caught.value)
