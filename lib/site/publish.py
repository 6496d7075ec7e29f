"""The published site: the repository setting that switches on the book's buttons, and ``make publish``.

One setting names the repository: ``repository.url`` in ``_config.yml`` (or, overriding it, the
environment variable ``STUDIES_REPOSITORY_URL``, which the CI workflow sets from the host). When it is
set, :func:`configure` turns on the repository and issues buttons and the Binder and Colab launch
buttons; when it is empty, they stay off (a button to nowhere is worse than none).

:func:`publish` (``studies publish``, ``make publish``) commits the built ``_build/html`` as the only
content of a ``gh-pages`` branch with ``ghp-import`` (a ``.nojekyll`` file keeps the ``_static``
folders served) and pushes it to the remote.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "REPOSITORY_ENV",
    "BINDERHUB_URL",
    "COLAB_URL",
    "PublishError",
    "repository_url",
    "configure",
    "publish",
]

#: Environment variable that overrides ``repository.url`` of ``_config.yml``.
REPOSITORY_ENV = "STUDIES_REPOSITORY_URL"
#: The public BinderHub the launch button opens.
BINDERHUB_URL = "https://mybinder.org"
#: Google Colab, the second launch button (GitHub repositories only).
COLAB_URL = "https://colab.research.google.com"
_URL = re.compile(r"^https://(?P<host>[^/\s]+)/(?P<owner>[^/\s]+)/(?P<repo>[^/\s]+?)(\.git)?/?$")


class PublishError(RuntimeError):
    """The site could not be published (nothing built, not a git checkout, the push failed)."""


def repository_url(config: dict[str, Any]) -> str | None:
    """The repository URL: ``$STUDIES_REPOSITORY_URL``, else ``repository.url`` of the config; ``None`` if unset.

    Raises
    ------
    ValueError
        The URL is not of the form ``https://<host>/<owner>/<repository>``.
    """
    url = os.environ.get(REPOSITORY_ENV) or (config.get("repository") or {}).get("url") or ""
    url = str(url).strip()
    if not url:
        return None
    m = _URL.match(url)
    if m is None:
        raise ValueError(
            f"repository URL {url!r} (from ${REPOSITORY_ENV} or repository.url in _config.yml) is not of the form "
            "https://<host>/<owner>/<repository>, e.g. https://github.com/owner/studies"
        )
    return f"https://{m.group('host')}/{m.group('owner')}/{m.group('repo')}"


def configure(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of the Jupyter Book config with the buttons on when a repository URL is set, off when not.

    With a URL: ``repository.url`` is set (``branch`` defaults to ``main``), ``html.use_repository_button``
    and ``html.use_issues_button`` are true, and ``launch_buttons`` get the Binder URL and, for a
    github.com repository, the Colab URL. Without: those buttons are off and the launch URLs empty.
    """
    out = copy.deepcopy(config)
    url = repository_url(out)
    html = out.setdefault("html", {})
    launch = out.setdefault("launch_buttons", {})
    if url is None:
        html["use_repository_button"] = False
        html["use_issues_button"] = False
        launch["binderhub_url"] = ""
        launch["colab_url"] = ""
        return out
    repo = out.setdefault("repository", {})
    repo["url"] = url
    repo.setdefault("branch", "main")
    repo.setdefault("path_to_book", "")
    html["use_repository_button"] = True
    html["use_issues_button"] = True
    launch["binderhub_url"] = BINDERHUB_URL
    launch["colab_url"] = COLAB_URL if url.startswith("https://github.com/") else ""
    return out


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PublishError(f"git {' '.join(args)} failed in {root}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def publish(
    html_dir: str | Path | None = None,
    *,
    remote: str = "origin",
    branch: str = "gh-pages",
    push: bool = True,
    root: Path | None = None,
) -> str:
    """Commit ``html_dir`` as the whole content of ``branch`` (ghp-import) and push it to ``remote``.

    Parameters
    ----------
    html_dir
        The built site (default: ``<root>/_build/html``).
    remote, branch
        Where the site goes; GitHub Pages serves the ``gh-pages`` branch.
    push
        ``False``: commit the branch locally only.
    root
        The git checkout (default: :func:`lib.runtime.run.repo_root`).

    Returns
    -------
    str
        The commit of the published branch.

    Raises
    ------
    PublishError
        No built site, not a git checkout, an unknown remote, or the import or push failed.
    """
    from lib.runtime.run import repo_root

    root = Path(root) if root is not None else repo_root()
    html = Path(html_dir) if html_dir is not None else root / "_build" / "html"
    if not (html / "index.html").is_file():
        raise PublishError(f"{html} holds no built book (no index.html): run `make book` first")
    _git(root, "rev-parse", "--git-dir")
    if push and remote not in _git(root, "remote").split():
        raise PublishError(
            f"{root} has no git remote {remote!r}; add it (git remote add {remote} URL) or pass --remote"
        )
    source = _git(root, "rev-parse", "--short=12", "HEAD")
    dirty = " (+ uncommitted changes)" if _git(root, "status", "--porcelain", "--untracked-files=no") else ""
    args = ["-n", "-m", f"Publish the book built from {source}{dirty}", "-r", remote, "-b", branch]
    if push:
        args.append("-p")
    cmd = [sys.executable, "-c", "import sys, ghp_import; sys.exit(ghp_import.main())", *args, str(html.resolve())]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PublishError(f"ghp-import failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return _git(root, "rev-parse", branch)
