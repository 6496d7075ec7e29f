"""``make gpu-check`` and ``make gpu-bundle``: prove the four ``gpu`` profiles on a borrowed GPU machine.

The GPU machine has Python 3.12 with torch, numba, scikit-image, scipy, pandas, seaborn and matplotlib, but
not the runner's packages (papermill, jupytext, nbclient, ipykernel, myst-nb, pydicom, SimpleITK, ...), and it
cannot download anything; one call to it carries at most :data:`CALL_LIMIT_BYTES` and runs at most ten minutes.
So the work is split in two:

``python -m lib.gpucheck bundle`` (here, ``make gpu-bundle``)
    downloads the wheels of the runner's packages for CPython 3.12 manylinux, pinned to
    ``requirements/lock.txt``, with their dependency closure minus what the device has
    (:data:`DEVICE_PROVIDES`); copies every registered dataset, verified, from the data mirror into
    ``.gpu-bundle/data/<mirror layout>``; writes ``.gpu-bundle/bundle.json`` (SHA-256 and size of every
    file) and prints each part's size and the calls that carry them (each under the limit).
``python -m lib.gpucheck check`` (there, ``make gpu-check``)
    refuses with one line and exit code 2 without CUDA; otherwise verifies the bundle, installs its wheels
    into ``.gpu-bundle/site`` (no pip, no network), points the data registry at the bundle's data
    (``STUDIES_DATA_MIRROR``), runs each study's ``gpu`` profile through the runner (``python -m lib run``,
    one at a time), writes ``results/gpu/<study>.json`` (:mod:`lib.pages.gpu_record`), runs the GPU
    benchmarks while time is left, and prints each ``paper`` profile's estimated run time on the device.
    It stops itself at a deadline (:data:`DEFAULT_DEADLINE_S`), checked between steps and enforced on each
    run by a timeout, and records what it has.

This module imports only :mod:`lib.runtime` and :mod:`lib.core`; it finds the studies through
:func:`lib.runtime.run.list_studies` and runs them through the runner's command line.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.core.repro import sha256_file
from lib.pages import gpu_record
from lib.runtime.run import list_studies, repo_root

__all__ = [
    "CALL_LIMIT_BYTES",
    "DEFAULT_DEADLINE_S",
    "DEVICE_PROVIDES",
    "RUNNER_ROOTS",
    "NOT_BUNDLED",
    "LEAF_ROOTS",
    "pack_datasets",
    "unpack_archives",
    "BUNDLE_DIR",
    "GPU_PROFILE",
    "TRAINING_WORK",
    "BundleError",
    "BundleItem",
    "Deadline",
    "normalise_name",
    "read_lock",
    "dependency_closure",
    "runner_pins",
    "download_wheels",
    "install_wheels",
    "plan_calls",
    "tree_bytes",
    "build_bundle",
    "write_bundle_manifest",
    "verify_bundle",
    "cuda_device",
    "headline_metrics",
    "make_record",
    "training_work",
    "run_check",
    "main",
]

#: Bytes one call to the device machine may carry (working tree, wheels and data together): 64 MiB.
CALL_LIMIT_BYTES = 64 * 2**20
#: Head-room kept free in every call for files other sessions add to the working tree meanwhile.
CALL_MARGIN_BYTES = 2 * 2**20
#: Paths one call may carry.
CALL_MAX_PATHS = 8
#: ``make gpu-check`` stops itself after this many seconds (the device allows ten minutes per command).
DEFAULT_DEADLINE_S = 540
#: The profile proven on the GPU.
GPU_PROFILE = "gpu"
#: Where the bundle is built (ignored by git; carried to the device in parts).
BUNDLE_DIR = Path(".gpu-bundle")
#: Distributions the GPU machine already has (with their own dependencies), never bundled.
DEVICE_PROVIDES = frozenset({
    "torch", "triton", "numba", "llvmlite", "numpy", "scikit-image", "scipy", "pandas", "seaborn", "matplotlib",
    "pillow", "python-dateutil", "pytz", "tzdata", "six", "packaging", "kiwisolver", "cycler", "fonttools",
    "contourpy", "pyparsing", "networkx", "imageio", "tifffile", "lazy-loader", "sympy", "mpmath", "filelock",
    "jinja2", "markupsafe", "fsspec", "typing-extensions", "setuptools", "pip",
})
#: Declared dependencies left out on purpose, with the reason (each optional where the runner uses it).
NOT_BUNDLED = {
    "aiohttp": "papermill declares it for Python 3.12 only (not in the lock: this venv is 3.11); papermill never "
               "imports it",
    "debugpy": "ipykernel imports it only for its debugger, in a try/except (5 MB)",
    "jedi": "IPython imports it only to complete code interactively (5 MB with parso)",
}
#: Roots bundled without their dependencies: the kernel calls only ``myst_nb.glue``, which needs IPython, nbformat
#: and docutils (a root of its own), not the Sphinx stack myst-nb declares (sphinx, babel, sqlalchemy: 20 MB).
LEAF_ROOTS = frozenset({"myst-nb"})
#: What the runner and the chapters import that the device lacks (the roots of the bundled closure).
RUNNER_ROOTS = ("papermill", "jupytext", "nbclient", "nbformat", "ipykernel", "jupyter-client", "myst-nb",
                "pyyaml", "pydicom", "simpleitk", "matplotlib-inline", "ipython", "docutils")
_WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
_TARGET_PYTHON = "3.12"


class BundleError(RuntimeError):
    """The bundle cannot be built, planned, verified or installed; the message names the file and the fix."""


@dataclass(frozen=True)
class BundleItem:
    """One path carried to the device (relative to the repository root) and its size in bytes."""

    path: str
    size: int


class Deadline:
    """Seconds left until a fixed end, read from an injectable clock (``time.monotonic`` by default)."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def left(self) -> float:
        """Seconds left (negative once passed)."""
        return self._end - self._clock()


# --------------------------------------------------------------------------- the wheel closure


def normalise_name(name: str) -> str:
    """A distribution name in PEP 503 normal form (``PyYAML`` -> ``pyyaml``, ``jupyter_client`` -> ``jupyter-client``).
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: str | Path) -> dict[str, str]:
    """The pins of ``requirements/lock.txt``: normalised name -> version.

    Raises
    ------
    BundleError
        A line is neither a comment nor ``name==version``.
    """
    path = Path(path)
    pins: dict[str, str] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if m is None:
            raise BundleError(f"{path} line {i}: {line!r} is not a pin 'name==version'; regenerate the lock file "
                              "with pip freeze (see its header)")
        pins[normalise_name(m.group(1))] = m.group(2)
    return pins


def dependency_closure(roots: Iterable[str], *, lock: Mapping[str, str], exclude: Iterable[str] = (),
                       leaves: Iterable[str] = (), requires: Callable[[str], list[str] | None] | None = None,
                       python_version: str = _TARGET_PYTHON) -> dict[str, str]:
    """The distributions ``roots`` need on the device, pinned: name -> version.

    Walks each distribution's ``Requires-Dist`` (read from this environment's metadata, markers evaluated
    for CPython ``python_version`` on Linux, extras not followed) and stops at ``exclude``.

    Parameters
    ----------
    roots : iterable of str
        Distributions to start from.
    lock : mapping
        Pins (:func:`read_lock`); every distribution reached must be pinned there.
    exclude : iterable of str
        Distributions the device has (:data:`DEVICE_PROVIDES`) or that are not needed (:data:`NOT_BUNDLED`).
    leaves : iterable of str
        Distributions taken without their dependencies (:data:`LEAF_ROOTS`).
    requires : callable, optional
        ``requires(name) -> list of requirement strings`` (default ``importlib.metadata.requires``).
    python_version : str

    Raises
    ------
    BundleError
        A distribution reached is not in the lock file.
    """
    from packaging.requirements import Requirement

    if requires is None:
        import importlib.metadata as md

        def requires(name: str) -> list[str] | None:
            return md.requires(name)

    env = {"python_version": python_version, "python_full_version": f"{python_version}.0",
           "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
           "platform_machine": "x86_64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "extra": ""}
    skip = {normalise_name(n) for n in exclude}
    leaf = {normalise_name(n) for n in leaves}
    out: dict[str, str] = {}
    todo = [normalise_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in out or name in skip:
            continue
        if name not in lock:
            raise BundleError(f"{name} is needed on the GPU machine but is not pinned in requirements/lock.txt; "
                              "install it in .venv and regenerate the lock file")
        out[name] = lock[name]
        for text in [] if name in leaf else requires(name) or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            todo.append(normalise_name(req.name))
    return dict(sorted(out.items()))


def runner_pins(lock_path: str | Path) -> dict[str, str]:
    """The pinned distributions the bundle carries: :data:`RUNNER_ROOTS` and their closure (see the constants)."""
    return dependency_closure(RUNNER_ROOTS, lock=read_lock(lock_path), exclude=DEVICE_PROVIDES | set(NOT_BUNDLED),
                              leaves=LEAF_ROOTS)


def download_wheels(pins: Mapping[str, str], dest: str | Path, *, python: str = sys.executable) -> list[Path]:
    """Download the wheels of ``pins`` for CPython 3.12 manylinux x86-64 into ``dest`` (pip, no dependencies).

    Raises
    ------
    BundleError
        pip failed (no network, or no wheel of a pinned version for that platform).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
           _TARGET_PYTHON, "--implementation", "cp", *[a for p in _WHEEL_PLATFORMS for a in ("--platform", p)],
           "-d", str(dest), *[f"{n}=={v}" for n, v in pins.items()]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BundleError(f"pip download of {len(pins)} wheels for CPython {_TARGET_PYTHON} failed (exit "
                          f"{proc.returncode}): {proc.stderr.strip()[-1500:]}\nCheck the network, or that every "
                          "pinned version has a wheel for that platform.")
    wanted = {normalise_name(n) for n in pins}
    wheels = sorted(p for p in dest.glob("*.whl") if normalise_name(p.name.split("-")[0]) in wanted)
    missing = wanted - {normalise_name(p.name.split("-")[0]) for p in wheels}
    if missing:
        raise BundleError(f"pip download left out {sorted(missing)} in {dest}; download them by hand")
    return wheels


def install_wheels(wheels: Iterable[str | Path], target: str | Path) -> list[str]:
    """Unpack wheels into ``target`` (a folder for ``PYTHONPATH``), without pip or network; return the names.

    A wheel is a zip of the installed files; ``<name>.data/purelib`` and ``platlib`` go to ``target`` too.
    Console scripts are not created (the runner is started as ``python -m lib``).

    Raises
    ------
    BundleError
        A file is not a wheel or is corrupt.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for wheel in wheels:
        wheel = Path(wheel)
        try:
            with zipfile.ZipFile(wheel) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise zipfile.BadZipFile(f"bad CRC in {bad}")
                for info in zf.infolist():
                    parts = info.filename.split("/")
                    if ".." in parts or info.filename.startswith("/"):
                        raise zipfile.BadZipFile(f"unsafe path {info.filename!r}")
                    if len(parts) > 2 and parts[0].endswith(".data"):
                        if parts[1] not in ("purelib", "platlib"):
                            continue  # scripts, headers, data: not needed to import
                        parts = parts[2:]
                    dest = target.joinpath(*parts)
                    if info.is_dir():
                        dest.mkdir(parents=True, exist_ok=True)
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out)
        except (zipfile.BadZipFile, OSError) as err:
            raise BundleError(f"{wheel}: not a usable wheel ({err}); rebuild the bundle with make gpu-bundle") \
                from None
        names.append(wheel.name)
    return names


# --------------------------------------------------------------------------- the bundle and its calls


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def tree_bytes(root: str | Path) -> int:
    """Bytes of the working tree a call sends: tracked files and untracked files git does not ignore."""
    root = Path(root)
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                          capture_output=True)
    if proc.returncode != 0:
        raise BundleError(f"{root}: git ls-files failed ({proc.stderr.decode(errors='replace').strip()}); "
                          "run from a git checkout")
    total = 0
    for rel in filter(None, proc.stdout.decode().split("\0")):
        p = root / rel
        if p.is_file():
            total += p.stat().st_size
    return total


def plan_calls(items: Sequence[BundleItem], *, tree: int, limit: int = CALL_LIMIT_BYTES,
               margin: int = CALL_MARGIN_BYTES, max_paths: int = CALL_MAX_PATHS) -> list[list[BundleItem]]:
    """Pack the carried paths into as few calls as fit (first fit, largest first).

    Every call sends the working tree (``tree`` bytes) plus its items; each call stays under
    ``limit - margin`` bytes and at most ``max_paths`` paths.

    Raises
    ------
    BundleError
        One item alone does not fit beside the working tree.
    """
    room = limit - margin - tree
    calls: list[list[BundleItem]] = []
    sizes: list[int] = []
    for item in sorted(items, key=lambda i: (-i.size, i.path)):
        if item.size > room:
            raise BundleError(
                f"{item.path} is {item.size / 2**20:.1f} MiB; with the working tree ({tree / 2**20:.1f} MiB) and "
                f"{margin / 2**20:.0f} MiB of head-room it does not fit one call of {limit / 2**20:.0f} MiB; "
                "split it (a compact form of the data, or fewer wheels per folder)")
        for k, size in enumerate(sizes):
            if size + item.size <= room and len(calls[k]) < max_paths:
                calls[k].append(item)
                sizes[k] += item.size
                break
        else:
            calls.append([item])
            sizes.append(item.size)
    return calls


def pack_datasets(bundle: str | Path, *, min_saving: float = 0.2) -> dict[str, str]:
    """Replace each dataset folder of ``bundle/data`` by an xz tarball in ``bundle/archives`` where that saves space.

    A folder is packed when its archive is at least ``min_saving`` smaller (text spectra shrink fourfold; PNG
    images do not shrink and stay as they are). Returns archive (relative to the bundle) -> mirror sub-folder.
    """
    import tarfile

    from lib.core import registry

    bundle = Path(bundle)
    packed: dict[str, str] = {}
    for name in registry.names():
        sub = registry.get(name).mirror_subdir
        folder = bundle / "data" / sub
        if not folder.is_dir():
            continue
        archive = bundle / "archives" / f"{name}.tar.xz"
        archive.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "w:xz") as tar:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    tar.add(p, arcname=p.relative_to(folder).as_posix(), recursive=False)
        if archive.stat().st_size <= (1 - min_saving) * _dir_bytes(folder):
            shutil.rmtree(folder)
            packed[archive.relative_to(bundle).as_posix()] = sub
        else:
            archive.unlink()
    if (bundle / "archives").is_dir() and not any((bundle / "archives").iterdir()):
        (bundle / "archives").rmdir()
    return packed


def unpack_archives(bundle: str | Path) -> list[str]:
    """Unpack the bundle's dataset archives (``bundle.json`` ``archives``) into ``bundle/data``; return the folders.

    Every unpacked dataset is then verified by the registry (:func:`lib.core.registry.verify`).

    Raises
    ------
    BundleError
        An archive is corrupt or holds a path outside its folder.
    lib.core.registry.ChecksumError
        An unpacked file differs from the registry's manifest.
    """
    import tarfile

    from lib.core import registry

    bundle = Path(bundle)
    meta = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    done = []
    for rel, sub in sorted(meta.get("archives", {}).items()):
        target = bundle / "data" / sub
        staging = target.with_name(f".{target.name}.unpack")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            with tarfile.open(bundle / rel, "r:xz") as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, OSError, EOFError) as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise BundleError(f"{bundle / rel}: cannot unpack ({err}); rebuild the bundle with make gpu-bundle") \
                from None
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        done.append(sub)
    for name in registry.names():
        ds = registry.get(name)
        if ds.mirror_subdir in done:
            registry.verify(ds, bundle / "data" / ds.mirror_subdir)
    return done


def write_bundle_manifest(bundle: str | Path, *, archives: Mapping[str, str] | None = None) -> Path:
    """Write ``bundle.json`` (SHA-256 and size of every file but ``site/``, and the archives); return its path."""
    bundle = Path(bundle)
    files = {}
    for p in sorted(bundle.rglob("*")):
        rel = p.relative_to(bundle).as_posix()
        unpacked = any(rel.startswith(f"data/{sub}/") for sub in (archives or {}).values())  # checked by the registry
        if p.is_file() and rel != "bundle.json" and not rel.startswith("site/") and not unpacked:
            files[rel] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    out = bundle / "bundle.json"
    out.write_text(json.dumps({"files": files, "archives": dict(archives or {})}, indent=1, sort_keys=True) + "\n",
                   encoding="utf-8")
    return out


def verify_bundle(bundle: str | Path) -> int:
    """Check every file of ``bundle.json`` against its SHA-256; return the file count.

    Raises
    ------
    BundleError
        The manifest is missing, or files are missing or differ (each named, with the call that carries it).
    """
    bundle = Path(bundle)
    manifest = bundle / "bundle.json"
    if not manifest.is_file():
        raise BundleError(f"{manifest} is missing: build the bundle with make gpu-bundle and carry every part "
                          "(python -m lib.gpucheck plan lists the calls)")
    files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    bad = []
    for rel, meta in files.items():
        p = bundle / rel
        if not p.is_file():
            bad.append(f"{rel}: missing")
        elif p.stat().st_size != meta["size"] or sha256_file(p) != meta["sha256"]:
            bad.append(f"{rel}: SHA-256 {sha256_file(p)}, expected {meta['sha256']}")
    if bad:
        raise BundleError(f"{bundle}: {len(bad)} file(s) of the bundle are missing or differ:\n  "
                          + "\n  ".join(bad[:20]) + "\nCarry every part of the plan (python -m lib.gpucheck plan) "
                          "before make gpu-check, or rebuild the bundle")
    return len(files)


def _bundle_items(bundle: Path) -> list[BundleItem]:
    """The carried paths: one per wheel group and per registered dataset present, plus ``bundle.json``."""
    items = []
    for sub in sorted((bundle / "wheels").glob("*")) if (bundle / "wheels").is_dir() else []:
        items.append(BundleItem((BUNDLE_DIR / "wheels" / sub.name).as_posix(), _dir_bytes(sub)))
    from lib.core import registry

    for name in registry.names():
        folder = bundle / "data" / registry.get(name).mirror_subdir
        if folder.is_dir():
            items.append(BundleItem((BUNDLE_DIR / "data" / registry.get(name).mirror_subdir).as_posix(),
                                    _dir_bytes(folder)))
    for archive in sorted((bundle / "archives").glob("*.tar.xz")) if (bundle / "archives").is_dir() else []:
        items.append(BundleItem((BUNDLE_DIR / "archives" / archive.name).as_posix(), archive.stat().st_size))
    if (bundle / "bundle.json").is_file():
        items.append(BundleItem((BUNDLE_DIR / "bundle.json").as_posix(), (bundle / "bundle.json").stat().st_size))
    return items


def _group_wheels(wheels: Sequence[Path], dest: Path, *, group_bytes: int) -> None:
    """Move the wheels into ``dest/wheels/<k>/`` folders of at most ``group_bytes`` each (largest first)."""
    groups: list[list[Path]] = []
    sizes: list[int] = []
    for w in sorted(wheels, key=lambda p: -p.stat().st_size):
        s = w.stat().st_size
        for k, total in enumerate(sizes):
            if total + s <= group_bytes:
                groups[k].append(w)
                sizes[k] += s
                break
        else:
            groups.append([w])
            sizes.append(s)
    for k, group in enumerate(groups):
        folder = dest / "wheels" / f"part{k + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        for w in group:
            shutil.move(str(w), folder / w.name)


def build_bundle(dest: str | Path | None = None, *, root: str | Path | None = None, download: bool = True,
                 datasets: Iterable[str] | None = None, out: Callable[[str], None] = print) -> list[list[BundleItem]]:
    """Build the bundle (wheels, verified data, ``bundle.json``), print its parts and return the planned calls.

    Parameters
    ----------
    dest : path, optional
        Bundle folder (default ``<root>/.gpu-bundle``); rebuilt from scratch.
    root : path, optional
        Repository root (default :func:`lib.runtime.run.repo_root`).
    download : bool
        Download the wheels (False: data only, e.g. without network).
    datasets : iterable of str, optional
        Registered datasets to carry (default all).
    out : callable
        Where the report lines go.

    Raises
    ------
    BundleError, lib.core.registry.DataUnavailableError, lib.core.registry.ChecksumError

    Notes
    -----
    A dataset that ships with the project (``Dataset.shipped_dir``) travels with the working tree and is skipped.
    """
    from lib.core import registry

    root = Path(root) if root is not None else repo_root()
    dest = Path(dest) if dest is not None else root / BUNDLE_DIR
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    tree = tree_bytes(root)
    room = CALL_LIMIT_BYTES - CALL_MARGIN_BYTES - tree
    if download:
        wheels = download_wheels(runner_pins(root / "requirements" / "lock.txt"), dest / "_download")
        _group_wheels(wheels, dest, group_bytes=room // 2)
        shutil.rmtree(dest / "_download")
    for name in datasets if datasets is not None else registry.names():
        ds = registry.get(name)
        if getattr(ds, "shipped_dir", ""):
            out(f"gpu-bundle: {name} ships with the working tree ({ds.shipped_dir}); not carried again")
            continue
        src = registry.fetch(name, download=False)
        target = dest / "data" / ds.mirror_subdir
        for f in ds.files:
            (target / f.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / f.path, target / f.path)
        registry.verify(ds, target)
    archives = pack_datasets(dest)
    for rel, sub in archives.items():
        out(f"gpu-bundle: data/{sub} packed into {rel} ({(dest / rel).stat().st_size / 2**20:.1f} MiB)")
    write_bundle_manifest(dest, archives=archives)
    items = _bundle_items(dest)
    calls = plan_calls(items, tree=tree)
    out(f"gpu-bundle: {dest} ({sum(i.size for i in items) / 2**20:.1f} MiB), working tree "
        f"{tree / 2**20:.1f} MiB, {len(calls)} call(s) of at most {CALL_LIMIT_BYTES / 2**20:.0f} MiB:")
    for k, call in enumerate(calls, start=1):
        size = tree + sum(i.size for i in call)
        last = k == len(calls)
        out(f"  call {k}: {size / 2**20:.1f} MiB, carry {json.dumps([i.path for i in call])}, command "
            + ("'make gpu-check' (or: python3 -m lib.gpucheck check)" if last else "'true'"))
        for i in call:
            out(f"    {i.path}: {i.size / 2**20:.2f} MiB")
    (dest / "plan.json").write_text(json.dumps([[i.path for i in c] for c in calls], indent=1) + "\n",
                                    encoding="utf-8")
    return calls


# --------------------------------------------------------------------------- the check


def cuda_device() -> str | None:
    """The name of CUDA device 0, or None without CUDA (or without torch)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return str(torch.cuda.get_device_name(0))


#: Per study: training sample-passes of a profile's parameters (the same unit for ``gpu`` and ``paper``, so
#: their ratio scales the measured ``gpu`` run to the ``paper`` profile); every trained network is counted at
#: its own epochs and samples per epoch, networks of one study at the same cost per sample.
TRAINING_WORK: dict[str, Callable[[Mapping[str, Any]], float]] = {
    "nuclei": lambda p: ((p["subset"][0] if p["subset"] else 402)
                         * (2 if p["train_unet"] else 1)
                         * (p["epochs"] * p["seed_protocol"] + p["recipe_epochs"] * p["recipe"] * p["crops_per_image"])
                         + p["sim_to_real_epochs"] * p["n_sim_train"]),
    "perfusion": lambda p: (p["n_train"] * p["slices_per_subject"] * p["epochs"]
                            * (2 + len(p["cnn_frame_counts"]) + p["ablate_maxpool"])),
    "pgnaa": lambda p: (p["steps_per_epoch"] * p["batch_size"]
                        * (p["epochs"] + p["discard_epochs"] * p["run_discard"] * 2 + 3 * p["alloy_epochs"] * 2
                           + p["table2_epochs"] * len(p["table2_models"]) + p["nist_epochs"])),
    "radiative": lambda p: (4 * p["n_densities"] * (1 - p["val_fraction"])
                            * (p["epochs"] + p["variant_epochs"] * 2 * p["channel_variants"]
                               + p["baseline_epochs"] * p["baseline"] + p["noise_epochs"] * p["noise_aware"])),
}

#: Per study: the metric with the seconds of its main training and the parameter with that training's epochs.
EPOCH_TIMING: dict[str, tuple[str, str, int]] = {
    "nuclei": ("headline_train_cpu_s", "recipe_epochs", 1),
    "perfusion": ("train_seconds", "epochs", 2),
    "pgnaa": ("expI_train_seconds", "epochs", 1),
    "radiative": ("rt_train_seconds", "epochs", 1),
}


def training_work(study: str, params: Mapping[str, Any]) -> float | None:
    """Training sample-passes of ``params`` (:data:`TRAINING_WORK`), or None for a study without a formula."""
    fn = TRAINING_WORK.get(study)
    if fn is None:
        return None
    try:
        return float(fn(params))
    except (KeyError, TypeError, IndexError):
        return None


def headline_metrics(study: str, metrics: Mapping[str, Any], *, root: str | Path) -> dict[str, float]:
    """The run's metrics that ``book/results_reference.yaml`` puts beside the paper's numbers for ``study``."""
    from lib.pages.results import load_reference

    ref = Path(root) / "book" / "results_reference.yaml"
    table = load_reference(ref) if ref.is_file() else None
    names = [] if table is None else list(table.loc[table["study"] == study, "metric"])
    out = {}
    for name in dict.fromkeys(names):
        value = metrics.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
                and abs(value) != float("inf"):
            out[name] = value
    return out


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "numba", "papermill"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    try:
        import torch

        out["cuda"] = str(torch.version.cuda)
    except ImportError:
        pass
    return out


def _commit(root: Path) -> str:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if proc.returncode == 0:
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return proc.stdout.strip() + ("-dirty" if dirty else "")
    return "unknown"


def make_record(study: str, run_dir: str | Path | None, *, device: str, status: str, wall_s: float, root: Path,
                gpu_params: Mapping[str, Any] | None = None, paper_params: Mapping[str, Any] | None = None,
                commit: str | None = None, versions: Mapping[str, str] | None = None,
                now: _dt.datetime | None = None) -> dict[str, Any]:
    """One study's GPU record from its run folder (``metrics.json``, ``provenance.json``), validated.

    Parameters
    ----------
    study : str
    run_dir : path or None
        The runner's output folder (None, or a folder without ``metrics.json``, for a run that did not start).
    device : str
        The CUDA device's name.
    status : str
        How the run ended (the run's ``provenance.json`` status wins when present).
    wall_s : float
        Wall time of the run, seconds.
    root : path
        Repository root (for the headline metrics of ``book/results_reference.yaml``).
    gpu_params, paper_params : mapping, optional
        The validated ``gpu`` and ``paper`` parameters, for the paper run-time estimate.
    commit, versions, now : optional
        Defaults: the checkout's ``git rev-parse HEAD``, the installed versions, the current UTC time.
    """
    metrics: dict[str, Any] = {}
    if run_dir is not None and (Path(run_dir) / "metrics.json").is_file():
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))
        prov_path = Path(run_dir) / "provenance.json"
        if prov_path.is_file():
            status = json.loads(prov_path.read_text(encoding="utf-8")).get("status", status)
    epoch_s = None
    timing = EPOCH_TIMING.get(study)
    if timing is not None and gpu_params is not None:
        metric, epochs_key, networks = timing
        seconds, epochs = metrics.get(metric), gpu_params.get(epochs_key)
        if isinstance(seconds, (int, float)) and isinstance(epochs, int) and epochs > 0:
            epoch_s = round(float(seconds) / (epochs * networks), 3)
    estimate = None
    if status == "ok" and gpu_params is not None and paper_params is not None:
        gw, pw = training_work(study, gpu_params), training_work(study, paper_params)
        if gw and pw:
            estimate = round(gpu_record.paper_runtime_estimate(gpu_wall_s=wall_s, gpu_work=gw, paper_work=pw), 1)
    record = {
        "study": study, "profile": GPU_PROFILE, "device": device,
        "date": (now or _dt.datetime.now(_dt.UTC)).isoformat(timespec="seconds"),
        "commit": commit if commit is not None else _commit(root),
        "versions": dict(versions) if versions is not None else _versions(),
        "status": status, "wall_s": round(float(wall_s), 1),
        "metrics": headline_metrics(study, metrics, root=root),
        "epoch_s": epoch_s, "paper_estimate_s": estimate,
    }
    return gpu_record.validate_record(record, source=f"record of {study}")


def _run_with_timeout(cmd: Sequence[str], *, timeout: float, env: Mapping[str, str], cwd: Path,
                      log: Path) -> tuple[int | None, float]:
    """Run ``cmd`` with its output in ``log``; on timeout SIGTERM (the runner records 'interrupted'), then kill.

    Returns the exit code (None after a timeout) and the wall time.
    """
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            code = None
    return code, time.perf_counter() - t0


#: Modules the runner and its kernels import that a bare GPU machine lacks: their absence installs the bundle.
RUNNER_MODULES = ("papermill", "jupytext", "nbclient", "ipykernel", "myst_nb", "yaml", "pydicom", "SimpleITK")


def _prepare_environment(root: Path, bundle: Path, env: dict[str, str], out: Callable[[str], None], *,
                         needed: Sequence[str] = RUNNER_MODULES) -> None:
    """Verify and unpack the bundle, point the registry at its data and, when ``needed`` modules are missing,
    install its wheels into ``bundle/site`` (for this process, the runs and their kernels)."""
    import importlib
    import importlib.util

    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if (bundle / "bundle.json").is_file():
        n = verify_bundle(bundle)
        unpacked = unpack_archives(bundle)
        out(f"gpu-check: bundle verified ({n} files" + (f"; unpacked and verified {', '.join(unpacked)})"
                                                         if unpacked else ")"))
        if (bundle / "data").is_dir():
            env["STUDIES_DATA_MIRROR"] = str((bundle / "data").resolve())
    if missing:
        wheels = sorted((bundle / "wheels").rglob("*.whl"))
        if not wheels:
            raise BundleError(f"this Python lacks {', '.join(missing)} and {bundle}/wheels holds no wheels; build "
                              "the bundle with make gpu-bundle and carry it (python -m lib.gpucheck plan)")
        site = bundle / "site"
        if site.exists():
            shutil.rmtree(site)
        install_wheels(wheels, site)
        sys.path.insert(0, str(site.resolve()))  # this process reads the chapters (jupytext) too
        importlib.invalidate_caches()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site.resolve()), env.get("PYTHONPATH")]))
        out(f"gpu-check: installed {len(wheels)} wheels into {site}")


def _benchmarks(device_ok: bool) -> list[tuple[str, list[str]]]:
    """The GPU benchmarks (name, arguments after ``python``), in the order they run."""
    if not device_ok:
        return []
    return [
        ("radiative_solver", ["benchmarks/radiative_solver.py", "--sizes", "64", "--batches", "256", "1024",
                              "--backend", "torch", "--device", "cuda", "--threads", "1", "--gpu-record",
                              "results/gpu/benchmarks/radiative_solver_gpu_record.json"]),
        ("gpu_profile_cost", ["benchmarks/gpu_profile_cost.py", "--device", "cuda", "--batch", "16", "--steps", "5"]),
        ("nuclei_throughput", ["benchmarks/nuclei_throughput.py", "--device", "cuda", "--batch", "16", "--steps", "5"]),
        ("pgnaa_sampling", ["benchmarks/pgnaa_sampling.py"]),
        ("perfusion_deconvolution", ["benchmarks/perfusion_deconvolution.py", "--size", "256", "--slices", "4",
                                     "--threads", "16"]),
    ]


def run_check(*, root: str | Path | None = None, deadline_s: float = DEFAULT_DEADLINE_S,
              studies: Sequence[str] | None = None, device: str | None = None,
              clock: Callable[[], float] = time.monotonic, out: Callable[[str], None] = print,
              python: str = sys.executable, benchmarks: bool = True) -> int:
    """``make gpu-check``: run every ``gpu`` profile on CUDA, write the records, run the benchmarks.

    Parameters
    ----------
    root : path, optional
        Repository root.
    deadline_s : float
        Stop after this many seconds with what is done (checked between steps; each run gets the time left).
    studies : sequence of str, optional
        Studies to run (default: every study with a ``gpu`` profile).
    device : str, optional
        The CUDA device's name (default :func:`cuda_device`; None there means no CUDA).
    clock, out, python, benchmarks
        Injectable clock, report sink, interpreter for the runs, and whether to run the benchmarks.

    Returns
    -------
    int
        0 when every run ended ``ok``, 1 when some did not, 2 without CUDA (one line said why).
    """
    device = device if device is not None else cuda_device()
    if device is None:
        out("gpu-check: no CUDA device here (torch.cuda.is_available() is False); run make gpu-check on a "
            "machine with an NVIDIA GPU")
        return 2
    deadline = Deadline(deadline_s, clock=clock)
    root = Path(root) if root is not None else repo_root()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    from lib.core.registry import ChecksumError

    try:
        _prepare_environment(root, root / BUNDLE_DIR, env, out)
    except (BundleError, ChecksumError) as err:
        out(f"gpu-check: {err}")
        return 1
    from lib.runtime.run import resolve_parameters

    chosen = [s for s in list_studies(root) if (s.parameter_dir / f"{GPU_PROFILE}.yaml").is_file()
              and (studies is None or s.name in studies)]
    out(f"gpu-check: {device}; {len(chosen)} studies, deadline {deadline_s:.0f} s")
    runs_dir = root / "_runs" / "_gpu-check"
    runs_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    estimates = []
    for st in chosen:
        left = deadline.left()
        gpu_params = resolve_parameters(st, GPU_PROFILE)[0]
        paper_params = resolve_parameters(st, "paper")[0] if (st.parameter_dir / "paper.yaml").is_file() else None
        run_dir = runs_dir / st.name
        if left < 30:
            status, wall = "not_run", 0.0
            out(f"gpu-check: {st.name}: not run, {max(left, 0):.0f} s left before the deadline")
        else:
            cmd = [python, "-m", "lib", "run", st.name, "--profile", GPU_PROFILE, "--quiet", "--out", str(run_dir)]
            code, wall = _run_with_timeout(cmd, timeout=left - 10, env=env, cwd=root,
                                           log=runs_dir / f"{st.name}.log")
            status = "ok" if code == 0 else ("timeout" if code is None else "failed")
            out(f"gpu-check: {st.name}: {status} in {gpu_record.format_duration(wall)} "
                f"(log {runs_dir / f'{st.name}.log'})")
        rec = make_record(st.name, run_dir if status != "not_run" else None, device=device, status=status,
                          wall_s=wall, root=root, gpu_params=gpu_params, paper_params=paper_params)
        gpu_record.write_record(rec, gpu_record.record_path(root, st.name))
        failures += rec["status"] != "ok"
        estimates.append((st.name, rec))
    if benchmarks:
        bench_dir = root / gpu_record.RECORD_DIR / "benchmarks"
        bench_dir.mkdir(parents=True, exist_ok=True)
        for name, args in _benchmarks(True):
            left = deadline.left()
            if left < 30:
                out(f"gpu-check: benchmark {name}: not run, {max(left, 0):.0f} s left")
                continue
            code, wall = _run_with_timeout([python, *args], timeout=left - 10, env=env, cwd=root,
                                           log=bench_dir / f"{name}.txt")
            state = "ok" if code == 0 else ("stopped at the deadline" if code is None else f"exit {code}")
            out(f"gpu-check: benchmark {name}: {state} in {gpu_record.format_duration(wall)} "
                f"(output {bench_dir / f'{name}.txt'})")
    out("gpu-check: estimated run time of each paper profile on this device (the gpu run's wall time scaled by "
        "the paper profile's training work):")
    for name, rec in estimates:
        est = rec["paper_estimate_s"]
        epoch = f", {rec['epoch_s']:.1f} s per epoch of the main training" if rec["epoch_s"] is not None else ""
        out(f"  {name}: {gpu_record.format_duration(est) if est is not None else 'unknown'} ({rec['status']}"
            f"{epoch})")
    return 1 if failures else 0


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lib.gpucheck {check,bundle,plan,verify}``."""
    ap = argparse.ArgumentParser(prog="python -m lib.gpucheck", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="run the gpu profiles and the benchmarks on CUDA, write results/gpu/")
    c.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE_S, help="seconds before it stops itself")
    c.add_argument("--study", action="append", help="only this study (repeatable)")
    c.add_argument("--no-benchmarks", action="store_true")
    b = sub.add_parser("bundle", help="build .gpu-bundle (wheels, data, checksums) and print the calls")
    b.add_argument("--dest", type=Path, default=None)
    b.add_argument("--no-download", action="store_true", help="data only (no wheels)")
    sub.add_parser("plan", help="print the calls of the built bundle")
    sub.add_parser("verify", help="check the bundle's files against bundle.json")
    a = ap.parse_args(argv)
    try:
        if a.command == "check":
            return run_check(deadline_s=a.deadline, studies=a.study, benchmarks=not a.no_benchmarks)
        root = repo_root()
        if a.command == "bundle":
            build_bundle(a.dest, root=root, download=not a.no_download)
            return 0
        bundle = root / BUNDLE_DIR
        if a.command == "verify":
            print(f"gpu-bundle: {verify_bundle(bundle)} files verified")
            return 0
        items = _bundle_items(bundle)
        if not items:
            raise BundleError(f"{bundle} is empty: build it with make gpu-bundle")
        tree = tree_bytes(root)
        for k, call in enumerate(plan_calls(items, tree=tree), start=1):
            print(f"call {k}: {(tree + sum(i.size for i in call)) / 2**20:.1f} MiB, carry "
                  f"{json.dumps([i.path for i in call])}")
        return 0
    except (BundleError, gpu_record.GpuRecordError) as err:
        print(f"gpu-check: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
