"""Student and instructor editions of a chapter: no solution text leaks, the student notebook still runs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from lib.cli import main
from lib.site.export import PLACEHOLDER, ExportError, export_study, strip_solutions

REPO = Path(__file__).resolve().parents[2]
# text that appears only inside the fixture chapter's two solutions
SOLUTION_TEXT = ("The total doubles: it is `n * scale`.", "print(len(labels))", "no profile overrides them")
EXERCISE_TEXT = ("Double `scale` and predict the total.", "How many labels does the `ci` profile use?")


def test_student_edition_keeps_exercises_and_drops_solutions(minibook, tmp_path):
    out = export_study("demo", tmp_path / "student", root=minibook)
    assert (out.exercises, out.solutions_removed) == (2, 2)
    md = out.markdown.read_text()
    raw_nb = out.notebook.read_text()
    for text in SOLUTION_TEXT:
        assert text not in md and text not in raw_nb
    assert "{solution}" not in md and "{solution}" not in raw_nb
    for text in EXERCISE_TEXT:
        assert text in md and text in raw_nb
    assert md.count(PLACEHOLDER) == 2
    assert "The total is {glue:text}" in md  # the rest of the chapter is untouched


def test_instructor_edition_keeps_solutions(minibook, tmp_path):
    out = export_study("demo", tmp_path / "teacher", student=False, root=minibook)
    md = out.markdown.read_text()
    assert out.solutions_removed == 0
    assert all(text in md for text in SOLUTION_TEXT + EXERCISE_TEXT)
    assert md == (minibook / "book" / "demo" / "demo.md").read_text()


def test_student_notebook_executes_at_ci(minibook, tmp_path):
    from nbclient import NotebookClient

    out = export_study("demo", tmp_path / "student", root=minibook)
    nb = nbformat.read(out.notebook, as_version=4)
    assert not any(o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))  # handed out clean
    env_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    os.environ["PYTHONPATH"], old = env_path, os.environ.get("PYTHONPATH")
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(out.notebook.parent)}}).execute()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert 'profile: str = "ci"' in params.source  # the defaults are the ci profile
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    glued = {o["metadata"]["scrapbook"]["name"]: o["data"] for c in nb.cells for o in c.get("outputs", [])
             if "scrapbook" in o.get("metadata", {})}
    assert any(v == "10.0" for k, v in glued["total"].items() if k.endswith("text/plain"))  # ci: n=10, scale=1
    assert any(k.endswith("image/png") for k in glued["demo_line"])  # the figure cell ran


def test_every_chapter_of_the_book_exports_without_its_solutions():
    for md in sorted((REPO / "book").glob("*/*.md")):
        if md.parent.name != md.stem:
            continue
        text = md.read_text()
        stripped, removed = strip_solutions(text)
        assert removed == text.count("{solution}") >= 1, md
        assert "{solution}" not in stripped
        assert stripped.count("{exercise}") == text.count("{exercise}")


@pytest.mark.parametrize("fence", ["```", "~~~", ":::"])
def test_solution_forms(fence):
    text = (f"{fence}{{exercise}}\n:label: e\nQ?\n{fence}\n\n"
            f"{fence}{{solution}} e\nSECRET-1\n{fence}\n\n"
            "```{dropdown} Solution to the second\nSECRET-2\n```\n\n"
            "```{admonition} Answer\n:class: dropdown\nSECRET-3\n```\n\n"
            "```{solution-start} e\n```\nSECRET-4\n```{solution-end}\n```\n\n"
            "```{code-cell} ipython3\n:tags: [solution]\nSECRET-5\n```\n\n"
            "```{admonition} A note\nkept\n```\n")
    out, removed = strip_solutions(text)
    assert removed == 5
    assert "SECRET" not in out and "Q?" in out and "kept" in out


def test_refuses_a_student_edition_with_unrecognised_solutions(minibook, tmp_path):
    md = minibook / "book" / "demo" / "demo.md"
    md.write_text(md.read_text().replace("{solution}", "{hint}"))
    with pytest.raises(ExportError, match="no solution this exporter recognises"):
        export_study("demo", tmp_path / "s", root=minibook)


def test_cli_export_and_no_overwrite(minibook, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STUDIES_ROOT", str(minibook))
    assert main(["export", "demo", "--student", str(tmp_path / "s")]) == 0
    assert "2 solutions removed" in capsys.readouterr().out
    assert main(["export", "demo", "--student", str(tmp_path / "s")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", "demo", "--instructor", str(tmp_path / "s"), "--overwrite"]) == 0
    assert SOLUTION_TEXT[0] in (tmp_path / "s" / "demo.md").read_text()


@pytest.mark.parametrize("study", ["perfusion", "nuclei", "radiative", "pgnaa"])
def test_real_chapters_export_as_valid_notebooks(study, tmp_path):
    if not (REPO / "book" / study / f"{study}.md").is_file():
        pytest.skip(f"no {study} chapter in this checkout")
    out = export_study(study, tmp_path, root=REPO)
    assert out.solutions_removed == out.exercises >= 1
    nb = nbformat.read(out.notebook, as_version=4)
    nbformat.validate(nb)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert "{solution}" not in out.notebook.read_text() and "{exercise}" in out.notebook.read_text()


def test_an_edition_never_overwrites_the_chapter_or_lands_in_the_book(minibook, tmp_path, monkeypatch, capsys):
    source = minibook / "book" / "demo" / "demo.md"
    original = source.read_text()
    monkeypatch.setenv("STUDIES_ROOT", str(minibook))
    assert main(["export", "demo", "--student", str(minibook / "book" / "demo"), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"refusing to write the student edition to {source}: that is the chapter's own source" in err
    assert "--overwrite does not change this" in err and "outside book/ and parameters/" in err
    assert "Traceback" not in err
    for dest in (minibook / "book", minibook / "book" / "new", minibook / "parameters" / "demo"):
        with pytest.raises(ExportError, match=r"that is inside .*, among the book's own sources"):
            export_study("demo", dest, root=minibook, overwrite=True)
        with pytest.raises(ExportError, match="the book's own sources"):
            export_study("demo", dest, student=False, root=minibook, overwrite=True)
    # through symlinks: a folder that is the chapter's folder, and a file that is the chapter
    (tmp_path / "alias").symlink_to(minibook / "book" / "demo", target_is_directory=True)
    with pytest.raises(ExportError, match=r"alias/demo\.md \(that is .*book/demo/demo\.md\): that is the chapter's"):
        export_study("demo", tmp_path / "alias", root=minibook, overwrite=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = elsewhere / "demo.md"  # the chapter's source kept outside the checkout, linked into book/
    source.rename(moved)
    source.symlink_to(moved)
    with pytest.raises(ExportError, match="the chapter's own source"):
        export_study("demo", elsewhere, root=minibook, overwrite=True)
    assert moved.read_text() == original and not (elsewhere / "demo.ipynb").exists()
    assert not (minibook / "book" / "new").exists() and not list((minibook / "book").rglob("*.ipynb"))
    assert export_study("demo", tmp_path / "handout", root=minibook).solutions_removed == 2  # elsewhere: fine
