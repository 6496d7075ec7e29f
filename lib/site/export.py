"""Hand-outs for teaching labs: a study's chapter as a notebook and MyST source, with or without solutions.

``studies export STUDY --student DIR`` writes ``DIR/<study>.md`` (MyST, Jupytext) and ``DIR/<study>.ipynb``
(unexecuted; its parameters cell holds the defaults, the ``ci`` profile) with every exercise's solution
removed and the exercise text kept. ``--instructor DIR`` writes the same two files with the solutions.

A solution is any of

* a ``solution`` directive of sphinx-exercise (any fence: backticks, tildes or colons, any length),
* a gated ``solution-start`` ... ``solution-end`` pair,
* a ``dropdown`` or ``admonition`` directive whose title begins with "Solution" or "Answer",
* a code cell tagged ``solution``.

A student hand-out of a chapter that has exercises but in which no solution was found is refused
(:class:`ExportError`): the format is probably one this module does not know, and handing it out
could leak the answers. So is an export into the checkout's ``book/`` or ``parameters/``, or onto the
chapter's source wherever a symlink puts it, even with ``--overwrite``: it would replace the chapter
(``studies export demo --student book/demo --overwrite`` once wrote the stripped edition over it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ExportError", "Export", "strip_solutions", "export_study"]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,}|:{3,})\{(?P<name>[\w:-]+)\}(?P<arg>.*)$")
_SOLUTION_TITLE = re.compile(r"^\s*(solution|answer)s?\b", re.IGNORECASE)
_CELL_TAGS = re.compile(r"^:tags:\s*\[(?P<tags>[^\]]*)\]")
#: What replaces a removed solution in the student version.
PLACEHOLDER = "*Your answer here. (The solution is withheld in the student edition.)*"


class ExportError(RuntimeError):
    """The export cannot be made as asked (unknown study, a target that would be overwritten, ...)."""


@dataclass(frozen=True)
class Export:
    """What :func:`export_study` wrote."""

    study: str
    edition: str
    markdown: Path
    notebook: Path
    exercises: int
    solutions_removed: int


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _block_end(lines: list[str], start: int, fence: str) -> int:
    """Index of the line closing the directive opened at ``start``.

    As in CommonMark, the first line made only of the fence character, at least as long as the opening
    fence, closes it; a directive nested inside must therefore use a shorter or a different fence.
    """
    for i in range(start + 1, len(lines)):
        if _closes(lines[i], fence):
            return i
    raise ExportError(f"the {fence}{{...}} directive opened at line {start + 1} is never closed")


def _is_solution(name: str, arg: str) -> bool:
    if name in ("solution", "solution-start"):
        return True
    return name in ("dropdown", "admonition") and bool(_SOLUTION_TITLE.match(arg))


def _count_exercises(text: str) -> int:
    names = ("exercise", "exercise-start")
    return sum(1 for line in text.splitlines() if (m := _FENCE.match(line)) and m.group("name") in names)


def strip_solutions(text: str) -> tuple[str, int]:
    """Remove every solution (see the module docstring) from MyST text; returns the text and how many.

    Each removed solution is replaced by :data:`PLACEHOLDER`, so a student sees where to answer.
    """
    lines = text.splitlines()
    out: list[str] = []
    removed = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line)
        if m is None:
            out.append(line)
            i += 1
            continue
        name, fence, arg = m.group("name"), m.group("fence"), m.group("arg")
        end = _block_end(lines, i, fence)
        tagged = name == "code-cell" and any(
            (t := _CELL_TAGS.match(lines[j].strip()))
            and "solution" in [s.strip(" '\"") for s in t.group("tags").split(",")]
            for j in range(i + 1, end)
        )
        if _is_solution(name, arg) or tagged:
            removed += 1
            if name == "solution-start":  # gated: everything up to the matching solution-end goes
                j = end + 1
                while j < len(lines):
                    mm = _FENCE.match(lines[j])
                    if mm and mm.group("name") == "solution-end":
                        end = _block_end(lines, j, mm.group("fence"))
                        break
                    j += 1
                else:
                    raise ExportError(f"the solution-start at line {i + 1} has no solution-end")
            out += [PLACEHOLDER] if not tagged else [f"{fence}{{code-cell}} ipython3", "# your code here", fence]
            i = end + 1
            continue
        out += lines[i:end + 1]
        i = end + 1
    return "\n".join(out) + ("\n" if text.endswith("\n") else ""), removed


def _refuse_sources(source: Path, targets: tuple[Path, ...], *, edition: str) -> None:
    """Refuse targets in the checkout's ``book/`` or ``parameters/`` or on the chapter's source (symlinks resolved).

    Raises
    ------
    ExportError
        Naming the target, what it would overwrite and the fix.
    """
    chapter = source.resolve()
    roots = {source.parents[2], chapter.parents[2]}  # <root>/book/<study>/<study>.md, as given and resolved
    protected = sorted({(r / d).resolve() for r in roots for d in ("book", "parameters")})
    for target in targets:
        real = target.resolve()
        if real == chapter:
            what = "the chapter's own source, which the edition would overwrite"
        elif (inside := next((d for d in protected if real.is_relative_to(d)), None)) is not None:
            what = f"inside {inside}, among the book's own sources (chapters and parameter files)"
        else:
            continue
        shown = f"{target} (that is {real})" if real != target.absolute() else str(target)
        raise ExportError(
            f"refusing to write the {edition} edition to {shown}: that is {what}; --overwrite does not change "
            "this. Choose a folder outside book/ and parameters/, e.g. handout/"
        )


def export_study(
    study: str, dest: str | Path, *, student: bool = True, root: Path | None = None, overwrite: bool = False,
) -> Export:
    """Write the student (or instructor) edition of ``study``'s chapter into ``dest``.

    Parameters
    ----------
    study
        A study name (``studies list``).
    dest
        Folder for ``<study>.md`` and ``<study>.ipynb``; created if missing.
    student
        ``True``: solutions removed; ``False``: the instructor edition, with solutions.
    root
        The checkout (default: :func:`lib.runtime.run.repo_root`).
    overwrite
        Replace existing files of the same names.

    Raises
    ------
    ExportError
        A target exists and ``overwrite`` is false; a target lies in the checkout's ``book/`` or ``parameters/``
        or is the chapter's source (symlinks resolved), whatever ``overwrite`` says; or a student edition
        finds exercises but no solution.
    StudyError
        Unknown study.
    """
    import jupytext
    import nbformat

    from lib.runtime.run import get_study

    st = get_study(study, root)
    text = Path(st.notebook).read_text(encoding="utf-8")
    exercises = _count_exercises(text)
    removed = 0
    if student:
        text, removed = strip_solutions(text)
        if exercises and not removed:
            raise ExportError(
                f"{st.notebook} has {exercises} exercise(s) but no solution this exporter recognises; refusing to "
                "write a student edition that might contain the answers (write solutions as ```{solution} <label>)"
            )
    dest = Path(dest)
    md, ipynb = dest / f"{study}.md", dest / f"{study}.ipynb"
    _refuse_sources(Path(st.notebook), (md, ipynb), edition="student" if student else "instructor")
    existing = [p for p in (md, ipynb) if p.exists()]
    if existing and not overwrite:
        raise ExportError(f"{', '.join(map(str, existing))} exist(s); choose an empty folder or pass --overwrite")
    dest.mkdir(parents=True, exist_ok=True)
    md.write_text(text, encoding="utf-8")
    nb = jupytext.reads(text, fmt="md:myst")
    nb.metadata.pop("jupytext", None)  # a plain notebook, not paired with a source it does not ship beside
    nb.metadata.setdefault("kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    nbformat.validate(nb)
    nbformat.write(nb, ipynb)
    return Export(study, "student" if student else "instructor", md, ipynb, exercises, removed)
