"""Every chapter builds in every data situation: no glued number or sentence disappears with its data.

A chapter skips work when an optional dataset is absent (dsb2018, nist-pgaa, unitobrain-samples, or the shipped
rt-reference outputs when their folder is gone), when a number is not finite (a count level never reached) or when
the profile switches an experiment off. The prose must still find every key it places with ``{glue:text}``,
``{glue:md}`` or ``{glue:figure}``, or ``jupyter-book build -W`` stops on "No key ... found in glue data". The
chapters therefore glue, on the branch without data, the sentence of :func:`lib.core.report.unavailable` under the
same key.

* Fast, static: every key a chapter's prose places is glued on every branch of its code (an ``if`` without an
  ``else`` that glues it too is a failure), and keys that may hold that sentence are placed with ``{glue:md}``.
* Fast enough: the fixture book builds with an empty mirror and downloads switched off
  (``STUDIES_OFFLINE=1``), one number from the shipped rt-reference copy and one unavailable.
* Slow: the real book at ``ci`` in a copy of the checkout, with an empty mirror, an empty cache and no network.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from lib.core import registry
from lib.runtime.run import chapter_parameters, get_study, resolve_parameters

REPO = Path(__file__).resolve().parents[2]
STUDIES = ["nuclei", "perfusion", "pgnaa", "radiative"]

#: Functions that glue a value under the name given as their first argument (the chapters' ``say``/``glue_text``
#: wrap myst-nb's ``glue``).
GLUE_FUNCS = {"metric", "figure", "table", "metric_or_unavailable", "unavailable", "text", "glue", "say",
              "glue_text"}
#: Helpers whose key may hold the unavailability sentence; the prose must place those keys with ``{glue:md}``.
TEXT_HELPERS = {"metric_or_unavailable", "unavailable"}
ROLE = re.compile(r"\{glue(?::(\w+))?\}`([^`]+)`")
DIRECTIVE = re.compile(r"^(?:`{3,}|~{3,})\{glue(?::(\w+))?\}\s+(\S+)", re.M)

#: Sections that a parameter switches off, with no data involved: their keys are glued only when the switch is
#: on, which every profile of the book sets (checked below, so turning one off in a profile fails this test).
SWITCHED = {
    "pgnaa": {"run_discard": {"discard_acc_all", "discard_acc_reduced", "discard_step_seconds_all",
                              "discard_step_seconds_reduced", "discard_n_ranges", "discard_first_kev",
                              "discard_verdict", "pgnaa_discard"}},
    "radiative": {"bump_cnn": {"rt_bump_keras_r2_mean_predictor_pct", "rt_bump_n_test", "rt_bump_n_train",
                               "rt_bump_params", "rt_bump_keras_r2_pct", "rt_bump_score", "rt_bump_spread",
                               "rt_verdict_bump", "rt_bump_cnn"},
                  "classification": {"rt_class_grid", "rt_class_n_test", "rt_class_binary_accuracy",
                                     "rt_class_severe"}},
}


# ----------------------------------------------------------------------------- static analysis of a chapter


def split_chapter(md: str) -> tuple[list[str], str]:
    """The code cells' sources and the prose (Markdown cells joined) of a MyST chapter."""
    nb = jupytext.reads(md, fmt="md:myst")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    return code, "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def prose_keys(prose: str) -> dict[str, list[tuple[str, str]]]:
    """``{key: [(role, format spec), ...]}`` of every glue role and directive in the prose."""
    keys: dict[str, list[tuple[str, str]]] = {}
    for kind, body in ROLE.findall(prose):
        key, _, fmt = body.partition(":")
        keys.setdefault(key, []).append((kind or "any", fmt))
    for kind, key in DIRECTIVE.findall(prose):
        keys.setdefault(key, []).append((kind or "figure", ""))
    return keys


def _pattern(node: ast.expr, loop_vars: dict[str, list[str]]) -> str | None:
    """A regular expression for the glue name a call's first argument can take (``None``: not known statically)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):  # f"exp{ex}_verdict": any text in the fields
        return "".join(re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in node.values)
    if isinstance(node, ast.Name) and loop_vars.get(node.id):  # for key in ("a", "b"): glue(key, ...)
        return "|".join(re.escape(v) for v in loop_vars[node.id])
    return None


def _loop_vars(loop: ast.For, outer: dict[str, list[str]]) -> dict[str, list[str]]:
    """The loop's target names, each standing for the string constants of the iterated collection."""
    consts = [n.value for n in ast.walk(loop.iter) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return {**outer, **{n.id: consts for n in ast.walk(loop.target) if isinstance(n, ast.Name)}}


def glue_calls(node: ast.AST, loop_vars: dict[str, list[str]] | None = None) -> list[tuple[str, str]]:
    """``[(function, name pattern), ...]`` of the glue calls anywhere below ``node``."""
    loop_vars = loop_vars or {}
    found = []
    if isinstance(node, ast.Call) and node.args:
        f = node.func
        func = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
        pat = _pattern(node.args[0], loop_vars) if func in GLUE_FUNCS else None
        if pat is not None:
            found.append((func, pat))
    inner = _loop_vars(node, loop_vars) if isinstance(node, ast.For) else loop_vars
    for child in ast.iter_child_nodes(node):
        found += glue_calls(child, inner)
    return found


def _always(stmts: list[ast.stmt], key: str, loop_vars: dict[str, list[str]]) -> bool:
    return any(_guaranteed(s, key, loop_vars) for s in stmts)


def _guaranteed(st: ast.stmt, key: str, loop_vars: dict[str, list[str]]) -> bool:
    """Whether executing ``st`` glues ``key`` whichever way its branches go (or stops the chapter)."""
    if isinstance(st, ast.Raise):
        return True
    if isinstance(st, ast.If):
        return _always(st.body, key, loop_vars) and _always(st.orelse, key, loop_vars)
    if isinstance(st, ast.For):  # loops of the chapters run over fixed, non-empty collections
        return _always(st.body, key, _loop_vars(st, loop_vars))
    if isinstance(st, (ast.While, ast.With)):
        return _always(st.body, key, loop_vars)
    if isinstance(st, ast.Try):
        return ((_always(st.body, key, loop_vars) and all(_always(h.body, key, loop_vars) for h in st.handlers))
                or _always(st.finalbody, key, loop_vars))
    if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return False
    return any(re.fullmatch(p, key) for _, p in glue_calls(st, loop_vars))


def conditional_keys(md: str) -> dict[str, str]:
    """Prose keys that some branch of the chapter's code does not glue: ``{key: "never glued" | "conditional"}``."""
    code, prose = split_chapter(md)
    trees = [ast.parse(c) for c in code if not c.lstrip().startswith(("%", "!"))]
    out = {}
    for key in prose_keys(prose):
        if any(_always(t.body, key, {}) for t in trees):
            continue
        glued = any(re.fullmatch(p, key) for t in trees for _, p in glue_calls(t))
        out[key] = "conditional" if glued else "never glued"
    return out


def chapter(study: str) -> str:
    return (REPO / "book" / study / f"{study}.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("study", STUDIES)
def test_every_key_of_the_prose_is_glued_on_every_branch(study):
    missing = conditional_keys(chapter(study))
    switched = set().union(*SWITCHED.get(study, {}).values()) if SWITCHED.get(study) else set()
    unexpected = {k: v for k, v in missing.items() if k not in switched}
    assert not unexpected, (
        f"book/{study}/{study}.md places these glue keys in its prose but does not glue them on every branch of "
        f"its code: {unexpected}. On the branch without the data (or the number), glue "
        "report.unavailable(key, why=..., how=...) or use report.metric_or_unavailable, and place the key with "
        "{glue:md}`key`.")


@pytest.mark.parametrize("study", sorted(SWITCHED))
def test_switched_sections_are_on_in_every_profile_of_the_book(study):
    st = get_study(study, REPO)
    defaults = {name: spec.default for name, spec in chapter_parameters(st).items()}
    for profile in (p for p in st.profiles if not p.startswith("sweep_")):  # sweeps are not built into the book
        params, _, _, _ = resolve_parameters(st, profile)
        for switch in SWITCHED[study]:
            assert params.get(switch, defaults[switch]), (
                f"profile {study}/{profile} switches {switch} off, but the prose places keys that only that section "
                f"glues ({sorted(SWITCHED[study][switch])}); glue report.unavailable(...) for them when it is off")


@pytest.mark.parametrize("study", STUDIES)
def test_keys_that_may_be_unavailable_are_placed_with_glue_md(study):
    code, prose = split_chapter(chapter(study))
    keys = prose_keys(prose)
    calls = [c for src in code if not src.lstrip().startswith(("%", "!")) for c in glue_calls(ast.parse(src))]
    for key, roles in keys.items():
        helpers = {func for func, pat in calls if re.fullmatch(pat, key)}
        if helpers & TEXT_HELPERS:
            assert all(kind == "md" for kind, _ in roles), (
                f"book/{study}/{study}.md: {key!r} may hold the sentence 'not available in this run: ...' "
                f"({sorted(helpers & TEXT_HELPERS)}), so the prose must place it with {{glue:md}}`{key}` "
                f"(no format spec); it uses {roles}")
        if any(kind == "md" for kind, _ in roles):
            assert helpers & (TEXT_HELPERS | {"text"}), (
                f"book/{study}/{study}.md: {{glue:md}}`{key}` needs text/markdown, which only "
                f"report.metric_or_unavailable / report.text / report.unavailable glue (it is glued by {helpers})")


_BROKEN = '''
```{code-cell} ipython3
from lib.core import report
if ok:
    report.metric("err", 0.1)
report.metric_or_unavailable("k95", None if bad else 3.0, fmt=".0f", why="w", how="h")
for key in ("a", "b"):
    if ok:
        report.metric(key, 1)
    else:
        report.unavailable(key, why="w", how="h")
try:
    x = 1
    report.metric("t", x)
except KeyError:
    pass
```

The error is {glue:text}`err:.1e`, k95 {glue:md}`k95`, {glue:md}`a`, {glue:md}`b`, {glue:text}`t`, {glue:text}`u`.
'''


def test_the_static_check_finds_each_kind_of_gap():
    """The analysis itself: an ``if`` without ``else``, a ``try`` whose handler does not glue, a key never glued."""
    assert conditional_keys(_BROKEN) == {"err": "conditional", "t": "conditional", "u": "never glued"}


# ----------------------------------------------------------------------------- builds without data or network


def _offline(monkeypatch, tmp_path: Path) -> None:
    """An empty mirror, an empty cache and downloads switched off, for this process and its children."""
    (tmp_path / "empty-mirror").mkdir(exist_ok=True)
    monkeypatch.setenv(registry.MIRROR_ENV, str(tmp_path / "empty-mirror"))
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "empty-cache"))
    monkeypatch.setenv(registry.OFFLINE_ENV, "1")


_FIXTURE_CELL = '''
```{code-cell} ipython3
from lib.core import registry

rt = registry.fetch("rt-reference")  # ships with the project: found offline, with an empty mirror
report.metric_or_unavailable("rt_files", len(list(rt.rglob("*.npy"))), fmt="{:d} arrays")
try:
    registry.fetch("unitobrain-samples")
    real = 3
except registry.DataUnavailableError as err:
    report.data_fallback("unitobrain-samples", str(err))
    real = None
report.metric_or_unavailable("real_files", real, fmt="{:d} files", why="the UniToBrain samples are absent",
                             how="`python -m lib data fetch unitobrain-samples`")
```

The reference outputs hold {glue:md}`rt_files`; the real files: {glue:md}`real_files`.
'''


def test_fixture_book_builds_offline_with_an_empty_mirror(minibook, monkeypatch, tmp_path):
    from lib.site.book import build_book

    _offline(monkeypatch, tmp_path)
    demo = minibook / "book" / "demo" / "demo.md"
    demo.write_text(demo.read_text(encoding="utf-8") + _FIXTURE_CELL, encoding="utf-8")
    html = build_book("lab", root=minibook, progress=False)  # the fixture's summary page reads the lab run
    page = (html / "book" / "demo" / "demo.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", page)
    assert "The reference outputs hold 7 arrays;" in text
    assert ("the real files: not available in this run: the UniToBrain samples are absent, and how to get it "
            "(python -m lib data fetch unitobrain-samples).") in text
    assert "<code" in page.split("the real files: not available in this run")[1][:200]  # Markdown: the command is code
    metrics = json.loads((minibook / "_runs" / "demo" / "lab" / "metrics.json").read_text())
    assert metrics["rt_files"] == 7 and "real_files" not in metrics  # a number only where there is one
    sources = json.loads((minibook / "_runs" / "demo" / "lab" / "provenance.json").read_text())["data_sources"]
    assert sources["rt-reference"] == "real"
    assert sources["unitobrain-samples"].startswith("synthetic (") and "STUDIES_OFFLINE=1" in sources[
        "unitobrain-samples"] or "there is no public download" in sources["unitobrain-samples"]


@pytest.mark.slow
def test_real_book_builds_at_ci_offline_with_an_empty_mirror(tmp_path):
    """The whole book at ``ci`` as a user's fresh clone builds it: no ../shared, no cache, no network.

    It runs in a copy of the checkout so that its ``_runs/`` and ``_build/`` do not touch this one's.
    """
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("_toc.yml", "_config.yml", "jupytext.toml", "pyproject.toml"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, root / name)
    for name in ("book", "lib", "parameters", "workflow", "benchmarks", "requirements"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.ipynb"))
    (tmp_path / "empty-mirror").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"STUDIES_ROOT", "PYTHONPATH"}}
    env.update({registry.MIRROR_ENV: str(tmp_path / "empty-mirror"), registry.CACHE_ENV: str(tmp_path / "cache"),
                registry.OFFLINE_ENV: "1", "OMP_NUM_THREADS": "1"})
    proc = subprocess.run([sys.executable, "-m", "lib", "book", "--profile", "ci", "--quiet", "--cores", "2"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, (proc.stdout[-3000:] + proc.stderr[-6000:])
    html = root / "_build" / "html" / "book"

    def text(study: str) -> str:
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", (html / study / f"{study}.html").read_text("utf-8")))

    for study in STUDIES:  # every key the prose places was glued in the executed notebook
        _, prose = split_chapter(chapter(study))
        nb = nbformat.read(root / "_runs" / study / "ci" / f"{study}.ipynb", as_version=4)
        glued = {o.get("metadata", {}).get("scrapbook", {}).get("name") for c in nb.cells for o in c.get("outputs", [])}
        assert set(prose_keys(prose)) <= glued, f"{study}: {sorted(set(prose_keys(prose)) - glued)} not glued"
    # the shipped reference outputs: the faithfulness section ran and reports numbers
    rt = text("radiative")
    assert re.search(r"relative to the field’s range, is \d\.\de-\d\d", rt) or re.search(
        r"relative to the field's range, is \d\.\de-\d\d", rt), rt[:2000]
    metrics = json.loads((root / "_runs" / "radiative" / "ci" / "metrics.json").read_text())
    assert metrics["rt_frames16_max_rel_err"] < 1e-5 and metrics["rt_signals32_max_rel_err"] < 1e-5
    # absent optional data: a sentence says why and how to get it, and the warning box says so
    assert "not available in this run: the NIST spectra (dataset nist-pgaa) are absent" in text("pgnaa")
    assert "python -m lib data fetch nist-pgaa" in text("pgnaa")
    assert "not available in this run: the motion experiment is off in this profile" in text("perfusion")
    # nuclei: the report's protocol is re-run in the book's own run, and its row has numbers
    nuc = text("nuclei")
    assert re.search(r"Of the report’s five test scores, .{3,20} reproduced by its protocol re-run here", nuc) or \
        re.search(r"Of the report's five test scores, .{3,20} reproduced by its protocol re-run here", nuc), nuc[:3000]
    assert "report, printout (L601-605)" in nuc and "has not run, so its row is missing" not in nuc
    fallback = "Real data unavailable: this section runs on the synthetic fallback"
    assert f"{fallback} (unitobrain-samples)" in text("perfusion") and f"{fallback} (dsb2018)" in text("nuclei")
