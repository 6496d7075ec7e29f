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
    monkeypatch.delenv(registry.OFFLINE_ENV, raising=False)
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


def test_unusable_cache_dir_names_the_variable_path_and_fix(toy, tmp_path, monkeypatch):
    """STUDIES_CACHE_DIR naming a file, or an unwritable folder: a clear CacheDirError, never raw errno text."""
    monkeypatch.delenv("STUDIES_OFFLINE", raising=False)  # the download path is the one that writes the cache
    not_a_folder = tmp_path / "cache-is-a-file"
    not_a_folder.write_text("x")
    monkeypatch.setenv(registry.CACHE_ENV, str(not_a_folder))
    with pytest.raises(registry.CacheDirError) as err:
        registry.fetch("toy")
    msg = str(err.value)
    assert f"the data cache cannot hold {not_a_folder / 'data' / 'toy.partial'}: {not_a_folder} is a file" in msg
    assert f"{registry.CACHE_ENV} is set to {str(not_a_folder)!r}" in msg
    assert f"Point {registry.CACHE_ENV} at a folder you can write to" in msg and "[Errno" not in msg
    assert not isinstance(err.value, DataUnavailableError)  # a misconfiguration stops the run, no synthetic fallback

    # an unwritable folder (os.access answers as it would for a non-root user of a chmod 555 folder)
    locked = tmp_path / "locked"
    monkeypatch.setenv(registry.CACHE_ENV, str(locked))
    real_access = os.access
    monkeypatch.setattr(registry.os, "access", lambda p, mode: False if Path(p).is_relative_to(locked)
                        else real_access(p, mode))
    with pytest.raises(registry.CacheDirError, match=rf"cannot hold {locked}/data/toy\.partial: Permission denied .*"
                                                     rf"{registry.CACHE_ENV} is set to '{locked}'"):
        registry.fetch("toy")


def test_record_data_source_writes_what_the_runner_reads(tmp_path, monkeypatch):
    """record_data_source -> $STUDIES_RUN_DIR/data_sources.json -> recorded_data_sources, exactly."""
    monkeypatch.setenv(registry.RUN_DIR_ENV, str(tmp_path))
    assert registry.recorded_data_sources() == {}
    registry.record_data_source("dsb2018", "real")
    registry.record_data_source("nist-pgaa", "synthetic (no copy in the mirror)")
    assert (tmp_path / registry.DATA_SOURCES_FILE).is_file()
    want = {"dsb2018": "real", "nist-pgaa": "synthetic (no copy in the mirror)"}
    assert registry.recorded_data_sources() == want
    assert registry.recorded_data_sources(tmp_path) == want
    registry.record_data_source("nist-pgaa", "real")  # a fallback stays recorded as such
    registry.record_data_source("dsb2018", "error (checksum of images/a.png)")
    assert registry.recorded_data_sources(tmp_path) == {"dsb2018": "error (checksum of images/a.png)",
                                                        "nist-pgaa": "synthetic (no copy in the mirror)"}
    monkeypatch.delenv(registry.RUN_DIR_ENV)
    registry.record_data_source("rt-reference", "real")  # outside a run: nothing written anywhere
    assert "rt-reference" not in registry.recorded_data_sources(tmp_path)


# ----------------------------------------------------------------------------- offline switch and shipped copies


def test_offline_switch_prevents_every_download(toy, tmp_path, source, monkeypatch):
    monkeypatch.setenv(registry.OFFLINE_ENV, "1")
    with pytest.raises(DataUnavailableError) as err:
        registry.fetch("toy")
    assert "downloads are switched off (STUDIES_OFFLINE=1)" in str(err.value)
    assert not (tmp_path / "cache" / "data").exists()  # nothing was fetched, not even a partial folder
    with pytest.raises(DataUnavailableError, match="downloads are switched off.*python -m lib data fetch toy"):
        registry.download_dataset("toy")
    with pytest.raises(OSError, match="downloads are switched off"):
        registry.download_file((source / "a.txt").as_uri(), tmp_path / "x" / "a.txt")
    assert not (tmp_path / "x" / "a.txt").exists()
    monkeypatch.setenv(registry.OFFLINE_ENV, "0")  # anything but 1/true/yes/on leaves downloads on
    assert registry.fetch("toy") == tmp_path / "cache" / "data" / "toy"


def _shipped(name: str, root: Path) -> Dataset:
    files = tuple(DataFile(rel, _sha(data), len(data)) for rel, data in FILES.items())
    return registry.register(Dataset(name, "A shipped dataset.", "ours", "MIT", "-", "shipped/v1", files,
                                     no_public_source="computed by us.", shipped_dir=str(root)))


def test_shipped_copy_comes_before_cache_mirror_and_download(source, tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    mirror = tmp_path / "mirror"
    (mirror / "shipped").mkdir(parents=True)
    (mirror / "shipped" / "v1").mkdir()  # an empty mirror folder would be "unavailable"
    monkeypatch.setenv(registry.MIRROR_ENV, str(mirror))
    monkeypatch.setenv(registry.OFFLINE_ENV, "1")
    corrupt_cache = tmp_path / "cache" / "data" / "shipped"
    corrupt_cache.mkdir(parents=True)
    (corrupt_cache / "a.txt").write_bytes(b"wrong")  # would be a ChecksumError if the cache were looked at first
    _shipped("shipped", source)
    try:
        assert registry.fetch("shipped") == source
        assert registry.recorded_data_sources() == {}  # outside a run nothing is recorded
    finally:
        registry._REGISTRY.pop("shipped")


def test_corrupt_shipped_copy_is_an_error_that_says_how_to_restore_it(source, tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    (source / "a.txt").write_bytes(b"alphA\n")
    _shipped("shipped", source)
    try:
        with pytest.raises(ChecksumError, match=r"a\.txt: SHA-256 [0-9a-f]{64}, registered [0-9a-f]{64}") as err:
            registry.fetch("shipped")
        assert "ships with the project" in str(err.value) and "git checkout --" in str(err.value)
    finally:
        registry._REGISTRY.pop("shipped")


def test_missing_shipped_copy_falls_back_to_the_cache_and_says_so(source, tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
    _shipped("shipped", tmp_path / "not-there")
    try:
        with pytest.raises(DataUnavailableError) as err:
            registry.fetch("shipped")
        assert f"the shipped copy {tmp_path / 'not-there'} is missing" in str(err.value)
        (tmp_path / "cache" / "data").mkdir(parents=True)
        (tmp_path / "cache" / "data" / "shipped").symlink_to(source, target_is_directory=True)
        assert registry.fetch("shipped") == tmp_path / "cache" / "data" / "shipped"
    finally:
        registry._REGISTRY.pop("shipped")


REPO = Path(__file__).resolve().parents[2]
RT_FILES = registry.get("rt-reference").files


def test_rt_reference_ships_with_the_project_and_is_found_offline(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "empty-cache"))
    monkeypatch.setenv(registry.MIRROR_ENV, str(tmp_path / "empty-mirror"))
    monkeypatch.setenv(registry.OFFLINE_ENV, "1")
    root = registry.fetch("rt-reference")
    assert root == registry.RT_REFERENCE_SHIPPED == REPO / "lib" / "radiative" / "reference"
    assert "lib/radiative/reference" in registry.how_to_obtain("rt-reference")


def test_shipped_reference_readme_gives_provenance_licence_and_the_manifest_checksums():
    readme = (registry.RT_REFERENCE_SHIPPED / "README.md").read_text(encoding="utf-8")
    assert "MIT, Copyright (c) 2021 Desmond Roussel Nzoyem" in readme
    assert "ca528474d4b42f51d41993ee2a62cf3a74789e18" in readme and "benchmarks/build_reference_solver.sh" in readme
    import re

    table = {m[0]: (m[1], int(m[2])) for m in re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \| (\d+) \|$", readme,
                                                            flags=re.M)}
    assert table == {f.path: (f.sha256, f.size) for f in RT_FILES}


def test_shipped_reference_is_package_data_and_not_ignored_by_git():
    import fnmatch
    import shutil
    import subprocess
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    radiative = patterns.get("lib.radiative", [])
    for f in RT_FILES:
        rel = f"reference/{f.path}"
        assert any(fnmatch.fnmatch(rel, p) for p in radiative), f"{rel} is not package data of lib.radiative"
    assert any(fnmatch.fnmatch("reference/README.md", p) for p in radiative)
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("no git checkout")
    paths = [f"lib/radiative/reference/{f.path}" for f in RT_FILES] + ["lib/radiative/reference/README.md"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert proc.stdout.strip() == "", f"git ignores shipped reference files: {proc.stdout}"
