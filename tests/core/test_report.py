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
    report.figure("line", fig)
    (bundle,), kw = shown[0]
    import base64

    assert base64.b64decode(bundle[report.GLUE_PREFIX + "image/png"])[:4] == b"\x89PNG"
    assert kw["metadata"]["scrapbook"] == {"name": "line", "mime_prefix": report.GLUE_PREFIX}
    with pytest.raises(TypeError):
        report.figure("x", "not a figure")


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
