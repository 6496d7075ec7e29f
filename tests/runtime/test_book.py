"""The book build: runs chapters through the runner, stages executed notebooks, builds with -W."""

import json
import re

import pytest

from lib.runtime.book import build_book, run_studies, study_chapters, toc_files


def test_toc_files_walks_parts_and_sections():
    toc = {"root": "intro", "parts": [{"chapters": [{"file": "a", "sections": [{"file": "b"}]}, {"url": "x"}]}]}
    assert toc_files(toc) == ["intro", "a", "b"]


def test_fixture_book_builds_with_glued_number(minibook):
    html = build_book("lab", root=minibook, progress=False)
    page = (html / "book" / "demo" / "demo.html").read_text()
    assert 'The total is <span class="pasted-text">42.00</span>' in page  # glued from the lab run (n=21, scale=2)
    assert "Provenance: demo" in page  # the collapsed provenance cell
    assert re.search(r'<img[^>]+src="[^"]+\.png"', page)  # the glued figure
    assert (html / "index.html").is_file()
    assert 'class="exercise admonition"' in page  # sphinx-exercise
    assert 'class="solution dropdown admonition"' in page  # its solution is toggled
    assert "nteract contributors, 2026" in page  # the citation resolved (author-year style)
    # a non-study notebook page is executed during the build, after the studies ran
    assert "summary sees total=42.0" in (html / "book" / "summary.html").read_text()
    # the download button offers the executed notebook
    src = html / "_sources" / "book" / "demo" / "demo.ipynb"
    assert src.is_file() and "deliberate failure" in src.read_text()

    # nothing changed: the second build reuses the run instead of executing again
    runs = run_studies("lab", root=minibook, progress=False)
    assert [r.reused for r in runs] == [True]
    # a parameter change re-executes
    p = minibook / "parameters" / "demo" / "lab.yaml"
    p.write_text(p.read_text().replace("n: 21", "n: 5"))
    runs = run_studies("lab", root=minibook, progress=False)
    assert [r.reused for r in runs] == [False]
    assert json.loads((minibook / "_runs/demo/lab/metrics.json").read_text())["total"] == 10.0


def test_book_build_fails_on_warnings(minibook):
    md = minibook / "book" / "intro.md"
    md.write_text(md.read_text() + "\nSee {doc}`does-not-exist`.\n")
    with pytest.raises(RuntimeError, match="jupyter-book build failed"):
        build_book("ci", root=minibook, progress=False)


def test_only_toc_chapters_are_run(minibook):
    assert study_chapters(minibook) == ["demo"]
    toc = minibook / "_toc.yml"
    toc.write_text("format: jb-book\nroot: book/intro\n")
    assert study_chapters(minibook) == []
