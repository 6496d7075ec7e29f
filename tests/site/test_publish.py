"""The published site: buttons from the one repository setting, and publishing to a local bare repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from lib.cli import main
from lib.site.publish import REPOSITORY_ENV, PublishError, configure, publish, repository_url

REPO = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text())


def test_buttons_are_off_without_a_repository(monkeypatch):
    monkeypatch.delenv(REPOSITORY_ENV, raising=False)
    cfg = configure(_config())
    assert repository_url(cfg) is None
    assert cfg["html"]["use_repository_button"] is False and cfg["html"]["use_issues_button"] is False
    assert cfg["launch_buttons"]["binderhub_url"] == "" and cfg["launch_buttons"]["colab_url"] == ""


def test_one_setting_turns_the_buttons_on(monkeypatch):
    monkeypatch.delenv(REPOSITORY_ENV, raising=False)
    base = _config()
    base["repository"]["url"] = "https://github.com/owner/studies.git"
    cfg = configure(base)
    assert cfg["repository"]["url"] == "https://github.com/owner/studies"
    assert cfg["html"]["use_repository_button"] and cfg["html"]["use_issues_button"]
    assert cfg["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert cfg["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert base["html"]["use_repository_button"] is False  # the input is not modified
    # the environment variable wins (CI sets it from the host); Colab opens GitHub repositories only
    monkeypatch.setenv(REPOSITORY_ENV, "https://gitlab.example.org/team/studies")
    cfg = configure(base)
    assert cfg["repository"]["url"] == "https://gitlab.example.org/team/studies"
    assert cfg["launch_buttons"]["binderhub_url"] and cfg["launch_buttons"]["colab_url"] == ""


def test_a_malformed_repository_url_is_refused(monkeypatch):
    monkeypatch.setenv(REPOSITORY_ENV, "github.com/owner")
    with pytest.raises(ValueError, match="https://<host>/<owner>/<repository>"):
        configure(_config())


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, Path]:
    """A git checkout with a built site in _build/html and a local bare repository as ``origin``."""
    bare = tmp_path / "remote.git"
    _git(tmp_path, "init", "--bare", "-q", str(bare))
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    _git(work, "config", "user.email", "ci@example.org")
    _git(work, "config", "user.name", "CI")
    (work / "README.md").write_text("source\n")
    _git(work, "add", "README.md")
    _git(work, "commit", "-q", "-m", "source")
    _git(work, "remote", "add", "origin", str(bare))
    html = work / "_build" / "html"
    (html / "_static").mkdir(parents=True)
    (html / "index.html").write_text("<html>book v1</html>")
    (html / "_static" / "style.css").write_text("body{}")
    return work, bare


def test_publish_to_a_local_bare_repository(checkout):
    work, bare = checkout
    commit = publish(root=work)
    files = set(_git(bare, "ls-tree", "-r", "--name-only", "gh-pages").splitlines())
    assert files == {".nojekyll", "index.html", "_static/style.css"}  # .nojekyll: _static is served
    assert _git(bare, "rev-parse", "gh-pages") == commit
    source = _git(work, "rev-parse", "--short=12", "HEAD")
    assert f"built from {source}" in _git(bare, "log", "-1", "--format=%s", "gh-pages")
    assert "README.md" not in files and _git(work, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    # a rebuilt site is published on top of the previous one
    (work / "_build" / "html" / "index.html").write_text("<html>book v2</html>")
    second = publish(root=work)
    assert _git(bare, "show", "gh-pages:index.html") == "<html>book v2</html>"
    assert _git(bare, "rev-parse", "gh-pages~1") == commit and second != commit


def test_publish_errors_name_the_fix(checkout, tmp_path):
    work, _ = checkout
    with pytest.raises(PublishError, match="make book"):
        publish(tmp_path / "empty", root=work)
    with pytest.raises(PublishError, match="no git remote 'upstream'"):
        publish(root=work, remote="upstream")


def test_cli_publish(checkout, monkeypatch, capsys):
    work, bare = checkout
    (work / "book").mkdir()  # what makes a folder the project's checkout
    monkeypatch.setenv("STUDIES_ROOT", str(work))
    assert main(["publish", "--html", str(work / "_build" / "html")]) == 0
    assert "pushed to origin" in capsys.readouterr().out
    assert _git(bare, "show", "gh-pages:index.html") == "<html>book v1</html>"


def test_launch_links_point_at_files_that_exist():
    from lib.site.theme import fix_launch_links

    page = "book/pgnaa/pgnaa"
    group = [{"type": "group", "buttons": [
        {"text": "Binder", "url": f"https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/{page}.ipynb"},
        {"text": "Colab", "url": f"https://colab.research.google.com/github/o/r/blob/main/{page}.ipynb"},
    ]}, {"type": "link", "text": "Download"}]
    fixed = fix_launch_links(group, page, ".ipynb")
    binder, colab = fixed[0]["buttons"]
    assert binder["url"].endswith(f"lab/tree/{page}.md")  # the repository holds the MyST source
    assert colab["url"] == f"https://colab.research.google.com/github/o/r/blob/gh-pages/_sources/{page}.ipynb"
    assert fixed[1] == group[1]
    # a Markdown notebook page: Binder opens the .md, Colab (ipynb only) is dropped
    md = fix_launch_links(group, "book/results", ".md")
    assert [b["text"] for b in md[0]["buttons"]] == ["Binder"]


def test_repeated_inline_scripts_are_dropped():
    from sphinx.builders.html._assets import _JavaScript

    from lib.site.theme import dedupe_inline_scripts

    a, b = _JavaScript(None, body="const X = 1"), _JavaScript(None, body="const X = 1")
    files = [_JavaScript("a.js"), a, b, _JavaScript("a.js"), "plain.js"]
    assert dedupe_inline_scripts(files) == [files[0], a, files[3], "plain.js"]
