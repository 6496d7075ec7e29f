"""The notebook-side reporting helpers, outside a kernel (IPython's display is captured)."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from lib.core import report


@pytest.fixture
def shown(monkeypatch):
    """Every object passed to IPython's display, with its keyword arguments."""
    calls = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: calls.append((a, k)))
    import myst_nb.ext.glue as glue_mod

    monkeypatch.setattr(glue_mod, "ipy_display", lambda *a, **k: calls.append((a, k)))
    return calls


def test_metric_glues_a_plain_number(shown):
    report.metric("acc", np.float32(0.5))
    (bundle,), kw = shown[0]
    assert bundle[report.GLUE_PREFIX + "text/plain"] == "0.5"
    assert kw["metadata"]["scrapbook"]["name"] == "acc"


@pytest.mark.parametrize(("value", "exc"), [(float("nan"), ValueError), ("0.5", TypeError), (True, TypeError)])
def test_metric_rejects_non_numbers(shown, value, exc):
    with pytest.raises(exc):
        report.metric("x", value)


def test_bad_glue_name(shown):
    with pytest.raises(ValueError, match="glue name"):
        report.metric("a b", 1)


def test_figure_is_a_png_whatever_the_backend(shown):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    report.figure("line", fig, alt="A rising  straight line\n from 0 to 1")
    (bundle,), kw = shown[0]
    import base64

    assert base64.b64decode(bundle[report.GLUE_PREFIX + "image/png"])[:4] == b"\x89PNG"
    assert kw["metadata"]["scrapbook"] == {"name": "line", "mime_prefix": report.GLUE_PREFIX}
    assert kw["metadata"]["image/png"] == {"alt": "A rising straight line from 0 to 1"}  # read by lib.site.figure_alt
    with pytest.raises(TypeError):
        report.figure("x", "not a figure", alt="does not matter here")


def test_figure_requires_alt_text(shown):
    fig, ax = plt.subplots()
    with pytest.raises(TypeError, match="alt"):
        report.figure("line", fig)  # keyword-only and required
    for bad in ("", "   ", "plot", "a plot"):
        with pytest.raises(ValueError, match="alt text"):
            report.figure("line", fig, alt=bad)
    assert not shown


def test_table_accepts_frames_and_stylers(shown):
    df = pd.DataFrame({"a": [1, 2]})
    report.table("t", df)
    report.table("s", df.style.format("{:.1f}"))
    assert len(shown) == 2
    with pytest.raises(TypeError):
        report.table("x", [1, 2])


def test_admonition_and_fallback(shown):
    report.admonition("warning", "Title", "Body with `code`.")
    (bundle,), _ = shown[0]
    assert '<div class="admonition warning">' in bundle["text/html"] and "<code>code</code>" in bundle["text/html"]
    with pytest.raises(ValueError):
        report.admonition("shout", "t", "b")
    report.data_fallback("nist-pgaa", "The mirror is missing.")
    (bundle,), _ = shown[-1]
    assert "synthetic fallback" in bundle["text/html"] and "STUDIES_DATA_MIRROR" in bundle["text/html"]


def test_show_provenance_is_collapsed(shown):
    report.show_provenance({"study": "s", "profile": "ci", "seed": 1, "git": {"commit": "abc", "dirty": True},
                            "device": {"device": "cpu"}, "versions": {"torch": "2.13.0"}})
    (bundle,), _ = shown[0]
    assert bundle["text/html"].startswith("<details><summary>Provenance: s")
    assert "abc + uncommitted changes" in bundle["text/html"]
    assert json.loads(bundle["text/plain"])["seed"] == 1


@pytest.mark.parametrize(("text", "value"), [("3", 3), ("0.25", 0.25), ("np.float64(1.5)", 1.5), ("'a'", None),
                                             ("nan", None), ("<Figure>", None)])
def testparse_number(text, value):
    assert report.parse_number(text) == value


# ----------------------------------------------------------------------------- numbers that optional data feeds


def _glued(shown):
    """``{name: bundle}`` of the glued (not displayed) outputs captured so far."""
    return {kw["metadata"]["scrapbook"]["name"]: bundle for (bundle,), kw in shown
            if "scrapbook" in kw.get("metadata", {})}


def _as_notebook(shown):
    """The captured outputs as one executed notebook cell, for the runner's metric collection."""
    import nbformat

    outputs = [nbformat.v4.new_output("display_data", data=bundle, metadata=kw.get("metadata", {}))
               for (bundle,), kw in shown]
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = outputs
    return nbformat.v4.new_notebook(cells=[cell])


def test_metric_or_unavailable_with_a_value_records_it_whole_and_shows_it_formatted(shown):
    from lib.runtime.run import collect_metrics

    report.metric_or_unavailable("err", np.float64(1.23456e-7), fmt=".1e", why="unused", how="unused")
    report.metric_or_unavailable("k95", 12345.6, fmt="about {:,.0f} counts")
    bundle = _glued(shown)["err"]
    assert bundle[report.GLUE_PREFIX + "text/markdown"] == "1.2e-07"  # what {glue:md} places in the prose
    assert _glued(shown)["k95"][report.GLUE_PREFIX + "text/markdown"] == "about 12,346 counts"
    assert collect_metrics(_as_notebook(shown)) == {"err": 1.23456e-7, "k95": 12345.6}  # metrics.json: full value


def test_metric_or_unavailable_without_a_value_glues_why_and_how_under_the_same_key(shown):
    from myst_nb.core.variables import format_plain_text

    from lib.runtime.run import collect_metrics

    report.metric_or_unavailable("err", None, fmt=".1e", why="the dataset rt-reference is absent",
                                 how="`python -m lib data verify rt-reference`")
    bundle = _glued(shown)["err"]
    want = ("not available in this run: the dataset rt-reference is absent, and how to get it "
            "(`python -m lib data verify rt-reference`)")
    assert bundle[report.GLUE_PREFIX + "text/markdown"] == want
    assert format_plain_text(bundle[report.GLUE_PREFIX + "text/plain"], "") == want  # {glue:text} reads the same
    assert collect_metrics(_as_notebook(shown)) == {}  # no number, no metric


def test_unavailable_needs_both_why_and_how(shown):
    with pytest.raises(ValueError, match="needs both `why`"):
        report.metric_or_unavailable("err", None, fmt=".1e")
    with pytest.raises(ValueError, match="needs both `why`"):
        report.unavailable("err", why="absent", how=" ")
    assert shown == []


def test_metric_or_unavailable_checks_value_and_format(shown):
    with pytest.raises(ValueError, match="not finite"):
        report.metric_or_unavailable("x", float("inf"), fmt=".1f")
    with pytest.raises(ValueError, match="format '.1q' does not apply"):
        report.metric_or_unavailable("x", 1.0, fmt=".1q")
    with pytest.raises(ValueError, match="glue name"):
        report.unavailable("a b", why="w", how="h")


def test_text_glues_for_both_roles(shown):
    report.text("verdict", "the goal is met (`lab`)")
    bundle = _glued(shown)["verdict"]
    assert bundle[report.GLUE_PREFIX + "text/markdown"] == "the goal is met (`lab`)"
    assert bundle[report.GLUE_PREFIX + "text/plain"] == "'the goal is met (`lab`)'"
    with pytest.raises(ValueError, match="non-empty string"):
        report.text("verdict", "")
    report.text("count", "3")  # a sentence that reads as a number stays a string for the runner
    assert report.parse_number(_glued(shown)["count"][report.GLUE_PREFIX + "text/plain"]) is None
