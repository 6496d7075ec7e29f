"""The book build: runs chapters through the runner, stages executed notebooks, builds with -W."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lib.runtime.run import get_study, study_inputs
from lib.site.book import build_book, run_studies, study_chapters, toc_files

REPO = Path(__file__).resolve().parents[2]


def test_toc_files_walks_parts_and_sections():
    toc = {"root": "intro", "parts": [{"chapters": [{"file": "a", "sections": [{"file": "b"}]}, {"url": "x"}]}]}
    assert toc_files(toc) == ["intro", "a", "b"]


def _took(minibook: Path) -> float:
    return json.loads((minibook / "_runs" / "demo" / "lab" / "provenance.json").read_text())["duration_s"]


def test_fixture_book_builds_with_glued_number(minibook, capsys):
    html = build_book("lab", root=minibook, progress=False)
    # the chapter's own time from its provenance.json, not the time of the workflow that ran it
    assert f"[book] demo/lab: ran in {_took(minibook):.0f} s\n" in capsys.readouterr().err
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
    ended = runs[0].result.provenance["ended"]
    assert runs[0].seconds == _took(minibook)  # the reused run's own time
    assert runs[0].summary() == f"demo/lab: reused (its run took {_took(minibook):.0f} s, ended {ended})"
    # a parameter change re-executes
    p = minibook / "parameters" / "demo" / "lab.yaml"
    p.write_text(p.read_text().replace("n: 21", "n: 5"))
    runs = run_studies("lab", root=minibook, progress=False)
    assert [r.reused for r in runs] == [False]
    assert runs[0].seconds == _took(minibook) and runs[0].summary() == f"demo/lab: ran in {_took(minibook):.0f} s"
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


def test_a_study_depends_on_core_runtime_and_its_own_package_only():
    files = {f.resolve().relative_to(REPO).as_posix() for f in study_inputs(get_study("pgnaa", REPO))}
    assert "book/pgnaa/pgnaa.md" in files and "lib/pgnaa/experiment.py" in files
    assert "lib/core/train.py" in files and "lib/runtime/run.py" in files and "requirements/lock.txt" in files
    assert "lib/core/manifests/nist-pgaa.csv" in files  # the data manifests
    assert not any(f.startswith(("lib/nuclei/", "lib/perfusion/", "lib/radiative/")) for f in files)
    # the site, the pages and the command line cannot change a chapter's output
    assert not any(f.startswith(("lib/site/", "lib/pages/")) for f in files)
    assert not {"lib/cli.py", "lib/gpucheck.py", "lib/__main__.py"} & files


_RUN = """
import json, sys
from lib.site.book import run_studies
runs = run_studies("ci", progress=False, cores=2)
print(json.dumps({r.study: r.reused for r in runs}))
"""


def test_editing_one_study_package_reruns_that_study_alone(minibook, tmp_path):
    """A self-contained checkout (the fixture book + this lib/ and workflow/) with a package per fixture study."""
    for name in ("lib", "workflow", "requirements"):
        shutil.copytree(REPO / name, minibook / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(minibook / "parameters" / "demo", minibook / "parameters" / "demo2")
    (minibook / "book" / "demo2").mkdir()
    shutil.copy(minibook / "book" / "demo" / "demo.md", minibook / "book" / "demo2" / "demo2.md")
    toc = minibook / "_toc.yml"
    toc.write_text(toc.read_text() + "  - file: book/demo2/demo2\n")
    for study in ("demo", "demo2"):
        (minibook / "lib" / study).mkdir()
        (minibook / "lib" / study / "__init__.py").write_text(f'"""The {study} study."""\n')

    def book_runs() -> dict[str, bool]:
        env = {k: v for k, v in __import__("os").environ.items() if k not in {"STUDIES_ROOT", "PYTHONPATH"}}
        proc = subprocess.run([sys.executable, "-c", _RUN], cwd=minibook, capture_output=True, text=True,
                              env={**env, "OMP_NUM_THREADS": "1"}, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    assert study_chapters(minibook) == ["demo", "demo2"]
    assert book_runs() == {"demo": False, "demo2": False}  # cold: both run (through the workflow)
    assert book_runs() == {"demo": True, "demo2": True}  # nothing changed
    (minibook / "lib" / "demo2" / "__init__.py").write_text('"""The demo2 study, edited."""\n')
    assert book_runs() == {"demo": True, "demo2": False}  # only the edited study's package
