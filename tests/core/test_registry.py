"""The dataset registry's three resolution paths (cache, mirror, download) on small temporary fixtures."""

import hashlib
import os
from pathlib import Path

import pytest

from lib.core import registry
from lib.core.registry import ChecksumError, DataFile, Dataset, DataUnavailableError


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


FILES = {"a.txt": b"alpha\n", "sub/b.bin": bytes(range(256))}


@pytest.fixture
def source(tmp_path) -> Path:
    """A directory that plays the public server (files reachable through file:// URLs)."""
    root = tmp_path / "server"
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def toy(source, tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
    files = tuple(DataFile(rel, _sha(data), len(data), (source / rel).as_uri()) for rel, data in FILES.items())
    ds = registry.register(Dataset("toy", "A toy dataset.", "file://server", "CC0", "-", "toy/v1", files))
    yield ds
    registry._REGISTRY.pop("toy", None)


def test_download_then_cache(toy, tmp_path, source):
    root = registry.fetch("toy")
    assert root == tmp_path / "cache" / "data" / "toy"
    assert (root / "sub/b.bin").read_bytes() == FILES["sub/b.bin"]
    # the public source disappears: the verified cache is used
    for p in source.rglob("*"):
        if p.is_file():
            p.unlink()
    assert registry.fetch("toy") == root


def test_mirror(toy, tmp_path, source, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    os.symlink(source, mirror / "toy" / "v1")
    monkeypatch.setenv(registry.MIRROR_ENV, str(mirror))
    assert registry.fetch("toy", download=False) == mirror / "toy" / "v1"


def test_corrupt_mirror_is_a_checksum_error(toy, tmp_path, source, monkeypatch):
    (source / "a.txt").write_bytes(b"alphA\n")
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    os.symlink(source, mirror / "toy" / "v1")
    monkeypatch.setenv(registry.MIRROR_ENV, str(mirror))
    with pytest.raises(ChecksumError, match=r"a\.txt: SHA-256 [0-9a-f]{64}, registered [0-9a-f]{64}") as err:
        registry.fetch("toy")
    assert "python -m lib data fetch toy" in str(err.value)
    # never an "unavailable" error, which chapters answer with a synthetic fallback
    assert not isinstance(err.value, DataUnavailableError)


def test_truncated_file_is_a_size_error(toy, tmp_path, source):
    registry.fetch("toy")
    cached = tmp_path / "cache" / "data" / "toy" / "sub" / "b.bin"
    cached.write_bytes(b"short")
    with pytest.raises(ChecksumError, match="size 5 bytes, registered 256 bytes") as err:
        registry.fetch("toy")
    assert "python -m lib data fetch toy --repair" in str(err.value)


def test_unavailable_says_how_to_get_it(toy, source):
    for p in source.rglob("*"):
        if p.is_file():
            p.unlink()
    with pytest.raises(DataUnavailableError) as err:
        registry.fetch("toy")
    msg = str(err.value)
    assert "downloading dataset 'toy' failed" in msg and registry.MIRROR_ENV in msg and "toy/v1" in msg
    assert "put a copy under" in msg


def test_no_url_files_cannot_be_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
    registry.register(Dataset("nourl", "d", "s", "l", "c", "x/y", (DataFile("f", "0" * 64),), obtain="Ask us."))
    try:
        with pytest.raises(DataUnavailableError, match="no public URL.*Ask us"):
            registry.fetch("nourl")
    finally:
        registry._REGISTRY.pop("nourl")


def test_unknown_dataset_lists_names():
    with pytest.raises(KeyError, match="registered datasets: .*nist-pgaa"):
        registry.get("nope")


def test_write_and_read_manifest_round_trip(source, tmp_path):
    out = tmp_path / "m.csv"
    assert registry.write_manifest(source, out, url_for=lambda rel: "https://x/" + rel) == 2
    files = registry.read_manifest(out)
    assert {f.path for f in files} == set(FILES)
    assert all(f.sha256 == _sha(FILES[f.path]) and f.url == "https://x/" + f.path for f in files)


@pytest.mark.parametrize("name", ["nist-pgaa", "rt-reference", "unitobrain-samples", "dsb2018"])
def test_builtin_datasets_verify_against_the_shared_mirror(name):
    mirror = registry.mirror_dir()
    if mirror is None or not (mirror / registry.get(name).mirror_subdir).is_dir():
        pytest.skip("no local data mirror (set STUDIES_DATA_MIRROR)")
    root = registry.fetch(name, download=False)
    assert root.is_dir()
