"""MathJax served from the built site: a Sphinx extension, so the book's maths renders offline.

The book's formulas are typeset in the reader's browser by MathJax. Sphinx loads it from a CDN by
default, so a book opened from a file system, in a lab room without network or from an archive shows
raw TeX. This extension (listed in ``_config.yml`` under ``sphinx.extra_extensions``) instead copies
MathJax |version| into ``_static/mathjax/`` of the built site and points ``mathjax_path`` at it.

The files come from the registry package ``sphinx-mathjax-offline`` (pinned in
``requirements/lock.txt``). Before they are copied, every file is checked against the SHA-256 digest
the package's wheel records for it, and the list of files with their digests is checked against
:data:`MANIFEST_SHA256`, pinned here: a different MathJax, a modified or a missing file fails the
build with :class:`MathJaxIntegrityError` instead of silently serving other code.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import shutil
from pathlib import Path
from typing import Any

__all__ = [
    "DISTRIBUTION",
    "DISTRIBUTION_VERSION",
    "MATHJAX_VERSION",
    "MANIFEST_SHA256",
    "ENTRY",
    "MathJaxIntegrityError",
    "mathjax_files",
    "verify",
    "copy_to",
    "setup",
]

#: The registry package that ships the MathJax files.
DISTRIBUTION = "sphinx-mathjax-offline"
#: Its pinned version (also pinned in ``requirements/lock.txt``).
DISTRIBUTION_VERSION = "0.0.2"
#: The MathJax release inside that package.
MATHJAX_VERSION = "3.2.2"
#: SHA-256 of the sorted ``"<path>,<sha256>"`` lines of every MathJax file of the pinned package.
MANIFEST_SHA256 = "1e5c5555349b347fa2a1d42fb000e59b416d5c6fb03f3f1e34df5a4d6502e021"
#: The MathJax component the pages load, relative to ``_static/mathjax``.
ENTRY = "tex-chtml.js"

_PREFIX = "sphinx-mathjax-offline/static/mathjax/"


class MathJaxIntegrityError(RuntimeError):
    """The installed MathJax files are not the pinned ones."""


def _fix() -> str:
    return f"reinstall the pinned package: pip install --force-reinstall {DISTRIBUTION}=={DISTRIBUTION_VERSION}"


def mathjax_files() -> tuple[Path, dict[str, str]]:
    """The installed MathJax directory and the recorded digest of each file in it.

    Returns
    -------
    root : Path
        The directory holding ``tex-chtml.js`` and the components it loads.
    digests : dict of str to str
        Path relative to ``root`` -> hex SHA-256 recorded in the wheel's ``RECORD``.

    Raises
    ------
    MathJaxIntegrityError
        The package is missing or not the pinned version.
    """
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as err:
        raise MathJaxIntegrityError(f"{DISTRIBUTION} is not installed; {_fix()}") from err
    if dist.version != DISTRIBUTION_VERSION:
        raise MathJaxIntegrityError(
            f"{DISTRIBUTION} {dist.version} is installed, the book pins {DISTRIBUTION_VERSION}; {_fix()}"
        )
    digests: dict[str, str] = {}
    for entry in dist.files or []:
        name = entry.as_posix()
        if not name.startswith(_PREFIX) or entry.hash is None:
            continue
        if entry.hash.mode != "sha256":
            raise MathJaxIntegrityError(f"{name} is recorded with {entry.hash.mode}, not sha256; {_fix()}")
        raw = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
        digests[name[len(_PREFIX):]] = raw.hex()
    if ENTRY not in digests:
        raise MathJaxIntegrityError(f"{DISTRIBUTION} lists no {ENTRY}; {_fix()}")
    root = Path(str(dist.locate_file(_PREFIX + ENTRY))).parent
    return root, digests


def _manifest_digest(digests: dict[str, str]) -> str:
    lines = "\n".join(f"{path},{digests[path]}" for path in sorted(digests))
    return hashlib.sha256(lines.encode()).hexdigest()


def verify() -> tuple[Path, dict[str, str]]:
    """Check the installed MathJax against the pinned manifest and each file against its digest.

    Returns
    -------
    root, digests
        As :func:`mathjax_files`, once verified.

    Raises
    ------
    MathJaxIntegrityError
        The manifest differs from :data:`MANIFEST_SHA256`, or a file is missing or modified.
    """
    root, digests = mathjax_files()
    manifest = _manifest_digest(digests)
    if manifest != MANIFEST_SHA256:
        raise MathJaxIntegrityError(
            f"the MathJax files of {DISTRIBUTION} {DISTRIBUTION_VERSION} are not the pinned set "
            f"(manifest {manifest}, pinned {MANIFEST_SHA256}); {_fix()}"
        )
    for rel, expected in digests.items():
        path = root / rel
        if not path.is_file():
            raise MathJaxIntegrityError(f"MathJax file {path} is missing; {_fix()}")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise MathJaxIntegrityError(
                f"MathJax file {path} was modified (sha256 {actual}, expected {expected}); {_fix()}"
            )
    return root, digests


def copy_to(static_dir: Path) -> Path:
    """Verify MathJax and copy it into ``static_dir / "mathjax"``; returns that directory."""
    root, digests = verify()
    dest = Path(static_dir) / "mathjax"
    for rel in digests:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, target)
    return dest


def _config_inited(app: Any, config: Any) -> None:
    verify()  # fail before the long build, not after it
    config.mathjax_path = f"mathjax/{ENTRY}"  # relative: Sphinx serves it from _static/


def _build_finished(app: Any, exc: BaseException | None) -> None:
    if exc is None and app.builder.format == "html":
        copy_to(Path(app.outdir) / "_static")


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point: serve the pinned, verified MathJax from ``_static/mathjax``."""
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("config-inited", _config_inited)
    app.connect("build-finished", _build_finished)
    return {"version": MATHJAX_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
