import pytest

from maskdet.io import assets
from maskdet.io.assets import AssetError, Package

IS_NUMBER = Package(
    "npm",
    "is-number",
    "7.0.0",
    "is-number-7.0.0.tgz",
    "7b75c1057198cf97696909a9bee176c9c5e9bcb5b03bf3ecef2f484defadd51e",
)


def test_fetch_verifies_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDET_CACHE", str(tmp_path))
    path = assets.fetch(IS_NUMBER)
    assert path.is_file() and assets.sha256_of(path) == IS_NUMBER.sha256
    assert path.parent == tmp_path / "packages"
    member = assets.extract((IS_NUMBER, "package/index.js"))
    assert "isNumber" in member.read_text() or "module.exports" in member.read_text()


def test_hash_mismatch_is_an_error_and_nothing_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDET_CACHE", str(tmp_path))
    wrong = Package("npm", "is-number", "7.0.0", "is-number-7.0.0.tgz", "0" * 64)
    with pytest.raises(AssetError, match="sha256 mismatch"):
        assets.fetch(wrong)
    assert not (tmp_path / "packages" / "is-number-7.0.0.tgz").exists()


def test_damaged_cached_copy_is_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDET_CACHE", str(tmp_path))
    (tmp_path / "packages").mkdir()
    (tmp_path / "packages" / IS_NUMBER.filename).write_bytes(b"not the package")
    path = assets.fetch(IS_NUMBER)
    assert assets.sha256_of(path) == IS_NUMBER.sha256


def test_missing_member_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDET_CACHE", str(tmp_path))
    with pytest.raises(AssetError, match="package/nope.js is not in is-number-7.0.0.tgz"):
        assets.extract((IS_NUMBER, "package/nope.js"))


def test_pinned_models_and_photos_are_real():
    onnx = assets.extract(assets.ULTRALIGHT_ONNX)
    mesh = assets.extract(assets.FACE_MESH_TFLITE)
    assert onnx.stat().st_size > 1_000_000 and mesh.stat().st_size > 1_000_000
    for asset in (*assets.FACE_API_PHOTOS, *assets.PORTRAIT_PHOTOS, assets.ASTRONAUT_PHOTO):
        assert assets.extract(asset).stat().st_size > 10_000
