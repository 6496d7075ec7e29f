"""Chapters hold no function definitions: logic belongs in ``lib/<study>/experiment.py``.

Every ``book/<study>/<chapter>.md`` (Jupytext MyST) is read cell by cell: the code of each ``{code-cell}`` fence is
parsed with :mod:`ast`, and any ``def``, ``async def``, ``class`` or ``lambda`` fails the test with the chapter and
its line number.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(REPO.glob("book/*/*.md"))
FORBIDDEN = {ast.FunctionDef: "def", ast.AsyncFunctionDef: "async def", ast.ClassDef: "class", ast.Lambda: "lambda"}
_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})\{code-cell\}")


def code_cells(text: str) -> list[tuple[int, str]]:
    """``(line of the opening fence, code)`` per ``{code-cell}`` of a MyST notebook (lines counted from 1).

    The cell's options (``:key: value`` lines or a ``---`` YAML block at its top) and IPython magics
    (``%``/``!`` lines) become blank lines, so line ``i`` of the code is line ``fence + i`` of the file.
    """
    lines = text.splitlines()
    cells, i = [], 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start, body = m["fence"], i + 1, []
        i += 1
        while i < len(lines) and not (lines[i].startswith(fence[0] * len(fence)) and not lines[i].strip(fence[0])):
            body.append(lines[i])
            i += 1
        if i >= len(lines):
            raise ValueError(f"code cell opened on line {start} is never closed")
        i += 1
        j = 0
        if body and body[0].strip() == "---":  # YAML options block
            end = next((n for n in range(1, len(body)) if body[n].strip() == "---"), None)
            if end is not None:
                for n in range(end + 1):
                    body[n] = ""
                j = end + 1
        while j < len(body) and body[j].startswith(":"):  # :tags: [...] options
            body[j] = ""
            j += 1
        body = ["" if b.lstrip().startswith(("%", "!")) else b for b in body]
        cells.append((start, "\n".join(body)))
    return cells


def definitions(text: str) -> list[tuple[int, str]]:
    """``(file line, kind)`` of every function, class and lambda in the code cells of a chapter's text."""
    found = []
    for start, code in code_cells(text):
        for node in ast.walk(ast.parse(code)):
            for kind_type, kind in FORBIDDEN.items():
                if isinstance(node, kind_type):
                    found.append((start + node.lineno, kind))
    return sorted(found)


def test_the_checker_finds_what_it_forbids():
    text = "\n".join([
        "# A chapter", "", "```{code-cell} ipython3", ":tags: [hide-input]", "x = 1", "def f():", "    return 2",
        "```", "", "Prose with def g(): and lambda in it.", "", "````{code-cell} ipython3", "---",
        "tags: [remove-input]", "---", "%matplotlib inline", "class A:", "    pass", "y = sorted([1], key=lambda v: v)",
        "````", "", "```python", "def not_a_cell(): pass", "```",
        "```{code-cell} ipython3", "async def h():", "    pass", "```",
    ])
    assert definitions(text) == [(6, "def"), (17, "class"), (19, "lambda"), (26, "async def")]
    assert definitions("```{code-cell} ipython3\nz = [i * 2 for i in range(3)]\n```\n") == []
    with pytest.raises(ValueError, match="never closed"):
        code_cells("```{code-cell} ipython3\nx = 1\n")


def test_every_study_has_a_chapter():
    assert {p.parent.name for p in CHAPTERS} >= {"nuclei", "perfusion", "pgnaa", "radiative"}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.relative_to(REPO).as_posix() for p in CHAPTERS])
def test_chapter_defines_no_functions(chapter: Path):
    text = chapter.read_text(encoding="utf-8")
    assert code_cells(text), f"{chapter.relative_to(REPO)} has no code cells"
    found = definitions(text)
    where = "; ".join(f"{chapter.relative_to(REPO)}:{line}: {kind}" for line, kind in found)
    assert not found, (f"chapters hold no function definitions, logic belongs in lib/{chapter.parent.name}/"
                       f"experiment.py: {where}")
