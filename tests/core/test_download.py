"""`data fetch` end to end against a fake public upstream served on 127.0.0.1 (no other address is used).

The server (http.server in a thread) serves a folder made in tmp_path, honours ``Range`` requests
(resume) and can be told to answer 404 or to drop the connection half-way through a file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tarfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.core import registry
from lib.core.registry import DataFile, Dataset, DataUnavailableError
from lib.cli import main

#: the shared mirror (read before the fixtures unset the variable for the download tests)
MIRROR = registry.mirror_dir()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


class _Upstream:
    """A fake public server: files below ``root``; ``faults[path]`` is ``"404"`` or ``"drop"`` (drop once)."""

    def __init__(self, root: Path):
        self.root = root
        self.faults: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
                rng = self.headers.get("Range")
                upstream.requests.append((path, rng))
                fault = upstream.faults.get(path)
                file = upstream.root / path
                if fault == "404" or not file.is_file():
                    self.send_error(404, "Not Found")
                    return
                data = file.read_bytes()
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "drop":
                    upstream.faults.pop(path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream(tmp_path):
    srv = _Upstream(tmp_path / "upstream")
    (tmp_path / "upstream").mkdir()
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
    return tmp_path / "cache" / "data"


# ----------------------------------------------------------------------------- verbatim files: resume, 404, corrupt

FILES = {"a.txt": b"alpha\n" * 1000, "sub/b b.bin": bytes(range(256)) * 4000}


@pytest.fixture
def toy(upstream, cache):
    for rel, data in FILES.items():
        (upstream.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (upstream.root / rel).write_bytes(data)
    files = tuple(DataFile(rel, _sha(d), len(d), f"{upstream.url}/{rel}") for rel, d in FILES.items())
    ds = registry.register(Dataset("toy-dl", "A toy dataset.", upstream.url, "CC0", "-", "toy/dl", files))
    yield ds
    registry._REGISTRY.pop("toy-dl", None)


def test_download_verifies_and_installs(toy, cache, capsys):
    assert main(["data", "fetch", "toy-dl"]) == 0
    assert "all 2 files verified" in capsys.readouterr().out
    assert (cache / "toy-dl" / "sub/b b.bin").read_bytes() == FILES["sub/b b.bin"]
    assert not (cache / "toy-dl.partial").exists()


def test_dropped_connection_resumes_with_a_range_request(toy, upstream, cache, capsys):
    upstream.faults["sub/b b.bin"] = "drop"
    assert main(["data", "fetch", "toy-dl"]) == 1
    err = capsys.readouterr().err
    assert "connection dropped" in err and "again to resume" in err and "Traceback" not in err
    assert not (cache / "toy-dl").exists()  # a partial download never looks like a dataset
    part = cache / "toy-dl.partial" / "sub" / "b b.bin.part"
    assert 0 < part.stat().st_size < len(FILES["sub/b b.bin"])
    have = part.stat().st_size
    assert main(["data", "fetch", "toy-dl"]) == 0
    assert ("sub/b b.bin", f"bytes={have}-") in upstream.requests  # resumed, not restarted
    assert ("a.txt", None) in upstream.requests and upstream.requests.count(("a.txt", None)) == 1
    assert (cache / "toy-dl" / "sub/b b.bin").read_bytes() == FILES["sub/b b.bin"]


def test_404_is_unavailable_and_installs_nothing(toy, upstream, cache, capsys):
    upstream.faults["a.txt"] = "404"
    assert main(["data", "fetch", "toy-dl"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and f"{upstream.url}/a.txt" in err
    assert not (cache / "toy-dl").exists()
    with pytest.raises(DataUnavailableError):
        registry.fetch("toy-dl", download=False)


def test_corrupted_upstream_file_is_a_checksum_error(toy, upstream, cache, capsys):
    data = bytearray(FILES["a.txt"])
    data[10] ^= 1
    (upstream.root / "a.txt").write_bytes(bytes(data))
    assert main(["data", "fetch", "toy-dl"]) == 1
    err = capsys.readouterr().err
    assert "a.txt: SHA-256" in err and _sha(bytes(data)) in err and _sha(FILES["a.txt"]) in err
    assert not (cache / "toy-dl").exists() and not (cache / "toy-dl.partial" / "a.txt").exists()


def test_corrupt_cache_copy_is_repaired_with_repair(toy, cache, capsys):
    assert main(["data", "fetch", "toy-dl"]) == 0
    (cache / "toy-dl" / "a.txt").write_bytes(b"x")
    assert main(["data", "fetch", "toy-dl"]) == 1
    assert "python -m lib data fetch toy-dl --repair" in capsys.readouterr().err
    assert main(["data", "fetch", "toy-dl", "--repair"]) == 0
    assert (cache / "toy-dl" / "a.txt").read_bytes() == FILES["a.txt"]


# ----------------------------------------------------------------------------- nist-pgaa: pinned commit, manifest built


@pytest.fixture(scope="module")
def shared_nist():
    mirror = MIRROR
    if mirror is None or not (mirror / "pgnaa/nist-pgaa").is_dir():
        pytest.skip("no local data mirror (set STUDIES_DATA_MIRROR)")
    return mirror / "pgnaa/nist-pgaa"


def test_nist_pgaa_fetch_end_to_end(shared_nist, upstream, cache, monkeypatch, capsys):
    """The repository layout (CITATION.cff, data/raw/...) served locally; manifest.csv is built, not downloaded."""
    root = upstream.root
    os.symlink(shared_nist / "CITATION.cff", root / "CITATION.cff")
    (root / "data" / "raw").mkdir(parents=True)
    os.symlink(shared_nist / "centers.csv", root / "data/raw/centers.csv")
    os.symlink(shared_nist / "training", root / "data/raw/training")
    monkeypatch.setenv(registry.UPSTREAM_ENV_PREFIX + "NIST_PGAA", upstream.url)
    spectrum = "data/raw/training/concrete/2019-09-16-TCG-cylinder-LI-1A top 00 -gp1.SPE"
    upstream.faults[spectrum] = "drop"
    assert main(["data", "fetch", "nist-pgaa"]) == 1
    assert "again to resume" in capsys.readouterr().err
    assert main(["data", "fetch", "nist-pgaa"]) == 0
    got = cache / "nist-pgaa"
    assert "all 328 files verified" in capsys.readouterr().out
    assert not any(p for p, _ in upstream.requests if p.endswith("manifest.csv"))  # built locally
    assert (got / "manifest.csv").read_bytes() == (shared_nist / "manifest.csv").read_bytes()
    assert registry.fetch("nist-pgaa") == got


# ----------------------------------------------------------------------------- dsb2018: two pinned commits, converted


def _ids(n_grey: int = 2, n_colour: int = 1) -> list[str]:
    mirror = MIRROR
    if mirror is None or not (mirror / "nuclei/dsb2018").is_dir():
        pytest.skip("no local data mirror (set STUDIES_DATA_MIRROR)")
    rows = list(csv.DictReader(open(mirror / "nuclei/dsb2018/manifest.csv", encoding="utf-8")))
    grey = [r["image_id"] for r in rows if r["stored_mode"] == "L" and r["in_fixed_set"] == "1"][:n_grey]
    colour = [r["image_id"] for r in rows if r["stored_mode"] == "RGB" and r["in_fixed_set"] == "1"][:n_colour]
    return grey + colour


def _masks(label: np.ndarray) -> dict[str, bytes]:
    """Per-nucleus upstream masks (0/255 PNGs) of a label image, named so that file-name order is label order."""
    out = {}
    for k in range(1, int(label.max()) + 1):
        m = (label == k).astype(np.uint8) * 255
        if m.any():
            buf = io.BytesIO()
            Image.fromarray(m).save(buf, format="PNG")
            out[f"{k:05d}.png"] = buf.getvalue()
    return out


def _upstream_png(mirror_png: Path) -> bytes:
    """The image as Kaggle ships it: RGBA with alpha 255."""
    rgb = np.asarray(Image.open(mirror_png).convert("RGB"))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    buf = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    return buf.getvalue()


def test_dsb_conversion_reproduces_the_registered_bytes():
    """Our layout rebuilt from upstream-style files equals the mirror's registered SHA-256, byte for byte."""
    ids = _ids(3, 2)
    mirror = MIRROR / "nuclei/dsb2018"
    reg = {f.path: f.sha256 for f in registry.get("dsb2018").files}
    for iid in ids:
        rgb = np.asarray(Image.open(io.BytesIO(_upstream_png(mirror / "images" / f"{iid}.png"))).convert("RGB"))
        grey = (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        assert _sha(registry.png_bytes(rgb[..., 0] if grey else rgb)) == reg[f"images/{iid}.png"]
        for sub in ("labels_original", "labels_fixed"):
            label = np.asarray(Image.open(mirror / sub / f"{iid}.png"))
            assert _sha(registry.png_bytes(label.astype(np.uint16))) == reg[f"{sub}/{iid}.png"]


def _dsb_upstream(root: Path, ids: list[str], *, corrupt: str | None = None) -> dict[str, str]:
    """Two GitHub-style archives (original, fixed) of stage1_train for ``ids``; returns upstream PNG SHA-256s."""
    mirror = MIRROR / "nuclei/dsb2018"
    shas = {}
    for commit, sub in ((registry._DSB_ORIGINAL, "labels_original"), (registry._DSB_FIXED, "labels_fixed")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            def add(name: str, data: bytes, commit: str = commit) -> None:
                info = tarfile.TarInfo(f"kaggle-dsbowl-2018-dataset-fixes-{commit}/stage1_train/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

            for iid in ids:
                png = _upstream_png(mirror / "images" / f"{iid}.png")
                shas[iid] = _sha(png)
                if corrupt == iid and sub == "labels_original":
                    png = png[:-20] + bytes(20)
                add(f"{iid}/images/{iid}.png", png)
                for name, data in _masks(np.asarray(Image.open(mirror / sub / f"{iid}.png"))).items():
                    add(f"{iid}/masks/{name}", data)
        (root / "tar.gz").mkdir(exist_ok=True)
        (root / "tar.gz" / commit).write_bytes(buf.getvalue())
    return shas


@pytest.fixture
def dsb_toy(upstream, cache, tmp_path, monkeypatch):
    ids = _ids()
    shas = _dsb_upstream(upstream.root, ids)
    table = tmp_path / "dsb-toy-manifest.csv"
    mirror_rows = {r["image_id"]: r for r in csv.DictReader(
        open(MIRROR / "nuclei/dsb2018/manifest.csv", encoding="utf-8"))}
    with open(table, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(next(iter(mirror_rows.values()))), lineterminator="\n")
        w.writeheader()
        for iid in ids:
            w.writerow({**mirror_rows[iid], "upstream_png_sha256": shas[iid]})
    real = {f.path: f for f in registry.get("dsb2018").files}
    files = [real[f"{sub}/{iid}.png"] for iid in ids for sub in ("images", "labels_original", "labels_fixed")]
    files.append(DataFile("manifest.csv", _sha(table.read_bytes()), table.stat().st_size))
    ds = registry.register(Dataset("dsb-toy", "3 DSB images", "fake", "CC0", "-", "nuclei/dsb-toy", tuple(files),
                                   builder=registry.build_dsb, base_url="https://example.invalid",
                                   upstream_manifest=str(table)))
    monkeypatch.setenv(registry.UPSTREAM_ENV_PREFIX + "DSB_TOY", upstream.url)
    yield ds, ids
    registry._REGISTRY.pop("dsb-toy", None)


def test_dsb_fetch_end_to_end_matches_the_real_checksums(dsb_toy, upstream, cache, capsys):
    ds, ids = dsb_toy
    fixed = f"tar.gz/{registry._DSB_FIXED}"
    upstream.faults[fixed] = "404"
    assert main(["data", "fetch", "dsb-toy"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "again to resume" in err
    assert not (cache / "dsb-toy").exists()
    del upstream.faults[fixed]  # the server is back
    assert main(["data", "fetch", "dsb-toy"]) == 0  # the original archive is not downloaded twice
    assert [p for p, _ in upstream.requests].count(f"tar.gz/{registry._DSB_ORIGINAL}") == 1
    root = cache / "dsb-toy"
    # the converted files carry the REAL dataset's registered SHA-256 (independent of this test's fixture)
    registry.verify(ds, root)
    assert sorted(p.name for p in (root / "images").iterdir()) == sorted(f"{i}.png" for i in ids)
    assert not (root / "_upstream").exists() and not (cache / "dsb-toy.partial").exists()


def test_dsb_corrupted_upstream_png_names_file_and_both_hashes(dsb_toy, upstream, cache, capsys):
    ds, ids = dsb_toy
    shas = _dsb_upstream(upstream.root, ids, corrupt=ids[1])
    assert main(["data", "fetch", "dsb-toy"]) == 1
    err = capsys.readouterr().err
    assert f"stage1_train/{ids[1]}/images/{ids[1]}.png: SHA-256" in err and f"upstream {shas[ids[1]]}" in err
    assert not (cache / "dsb-toy").exists()
    assert not (cache / "dsb-toy.partial" / "_upstream" / f"{registry._DSB_ORIGINAL}.tar.gz").exists()
