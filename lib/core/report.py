"""Notebook-side reporting: how numbers, figures and notices reach the book.

Every headline number goes through :func:`metric` (glued for the prose with
``{glue:text}`name:.3f``` and collected by the runner into ``metrics.json``), every
figure through :func:`figure` (placed with the ``{glue:figure}`` directive and
exported by the runner to ``figures/<name>.png``).

A number or sentence that depends on optional data (a dataset that may be absent, an
experiment a profile switches off) goes through :func:`metric_or_unavailable` or
:func:`unavailable`: the glue key then exists on every branch, holding either the
formatted value or the sentence "not available in this run: <why>, and how to get it
(<how>)", so that the book builds whatever data a machine has. The prose places such
a key with ``{glue:md}`name``` (no format spec: the value is formatted here).
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

import numpy as np

__all__ = [
    "metric",
    "metric_or_unavailable",
    "text",
    "unavailable",
    "unavailable_text",
    "UNAVAILABLE",
    "figure",
    "table",
    "admonition",
    "data_fallback",
    "show_provenance",
    "parse_number",
    "GLUE_PREFIX",
]

#: Mime prefix myst-nb uses for glued outputs that are not displayed in place.
GLUE_PREFIX = "application/papermill.record/"
#: How every sentence glued in place of a missing number or statement begins.
UNAVAILABLE = "not available in this run"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"glue name must be letters, digits, '_' or '-', got {name!r}")


def _glue(name: str, value: Any) -> None:
    from myst_nb import glue

    _check_name(name)
    glue(name, value, display=False)


def _real(name: str, value: Any) -> float | int:
    """``value`` as a finite Python int or float (NumPy/torch scalars unwrapped), or a clear error naming ``name``."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"metric {name!r} must be a real number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"metric {name!r} is not finite ({value}); check the computation that produced it")
    return value


def metric(name: str, value: float | int) -> None:
    """Record a headline number.

    Parameters
    ----------
    name : str
        Key in ``metrics.json`` and glue name for the prose.
    value : float or int
        A finite real number (NumPy and 0-d torch scalars are accepted).
    """
    _glue(name, _real(name, value))


def _glue_text(name: str, plain: str, markdown: str) -> None:
    """Glue a bundle with ``text/plain`` (what the runner and ``{glue:text}`` read) and ``text/markdown``."""
    from IPython.display import display

    _check_name(name)
    bundle = {GLUE_PREFIX + "text/plain": plain, GLUE_PREFIX + "text/markdown": markdown}
    display(bundle, raw=True, metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}})


def text(name: str, text: str) -> str:
    """Glue a sentence computed from the run's numbers (a verdict, a clause; Markdown allowed).

    The one way a chapter glues prose: the prose places it with ``{glue:text}`name``` or
    ``{glue:md}`name```. The bundle holds ``text/plain`` (the string's ``repr``, which myst-nb's
    ``{glue:text}`` turns back into the string and the runner never mistakes for a number, even
    when the sentence is ``"3"``) and ``text/markdown`` (the string itself, for ``{glue:md}``), so
    the counterpart :func:`unavailable` can glue the same key on the branch where the data was
    missing.

    Parameters
    ----------
    name : str
        Glue name (letters, digits, ``_``, ``-``).
    text : str
        A non-empty sentence.

    Returns
    -------
    str
        ``text``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"report.text({name!r}, ...) needs a non-empty string, got {text!r}; compute the sentence "
                         "first (or glue report.unavailable(...) on the branch where it cannot be computed)")
    _glue_text(name, repr(text), text)
    return text


def unavailable_text(why: str, how: str) -> str:
    """The sentence shown in place of a number or statement this run could not compute.

    Parameters
    ----------
    why : str
        Why it is missing (e.g. "the dataset rt-reference is absent"); no final full stop.
    how : str
        The command or source that makes it available (e.g. "`python -m lib data fetch nist-pgaa`").

    Returns
    -------
    str
        ``"not available in this run: <why>, and how to get it (<how>)"``.
    """
    why, how = str(why).strip().rstrip("."), str(how).strip().rstrip(".")
    if not why or not how:
        raise ValueError("unavailable_text needs both `why` (what is missing) and `how` (the command or source "
                         f"that provides it); got why={why!r}, how={how!r}")
    return f"{UNAVAILABLE}: {why}, and how to get it ({how})"


def unavailable(name: str, *, why: str, how: str) -> str:
    """Glue, under ``name``, the sentence saying that this run lacks it, why, and how to get it.

    Use it on the branch where a glued number or sentence cannot be computed (optional data
    absent, an experiment the profile switches off), so that the prose's ``{glue:md}`name```
    or ``{glue:text}`name``` (without a format spec) resolves on every branch. Nothing is
    recorded in ``metrics.json`` under ``name``.

    Returns
    -------
    str
        The glued sentence (see :func:`unavailable_text`).
    """
    text = unavailable_text(why, how)
    _glue_text(name, repr(text), text)
    return text


def metric_or_unavailable(name: str, value: float | int | None, *, fmt: str, why: str = "",
                          how: str = "") -> None:
    """Record a number that depends on optional data, or glue why it is missing.

    With a value, the number goes to ``metrics.json`` under ``name`` as with :func:`metric`
    (``text/plain`` holds it in full) and the prose shows it formatted with ``fmt``
    (``text/markdown``, placed with ``{glue:md}`name```). With ``value=None`` the key holds
    :func:`unavailable_text` instead, so the same prose builds either way.

    Parameters
    ----------
    name : str
        Key in ``metrics.json`` and glue name for the prose.
    value : float, int or None
        A finite real number, or ``None`` when this run could not compute it.
    fmt : str
        How the prose shows the number: a format spec (``".1e"``, ``".3f"``, ``",.0f"``) or a
        template with one ``{}`` field (``"about {:,.0f} counts"``), so that the value and the
        unavailability sentence both read as a clause of the same sentence.
    why, how : str
        Required when ``value`` is ``None``: why it is missing and how to get it.
    """
    if value is None:
        unavailable(name, why=why, how=how)
        return
    value = _real(name, value)
    try:
        shown = fmt.format(value) if "{" in fmt else format(value, fmt)
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise ValueError(f"metric {name!r}: format {fmt!r} does not apply to {value!r} ({err}); use a numeric "
                         "spec such as '.3f' or '.1e', or a template with one field such as 'about {:,.0f}'") from None
    _glue_text(name, repr(value), shown)


def figure(name: str, fig: Any, *, alt: str, close: bool = True, dpi: int = 110) -> None:
    """Glue a matplotlib figure under ``name`` as a PNG, without displaying it in place.

    The PNG is rendered here (whatever the matplotlib backend), so the figure reaches the
    book and ``figures/<name>.png`` even when the kernel runs a non-interactive backend.

    Parameters
    ----------
    name : str
        Glue key (placed with ``{glue:figure}`name```) and file name.
    fig : matplotlib.figure.Figure
    alt : str
        Alternative text: what the figure shows, for readers who cannot see it (at least three
        words; numbers of the run may be part of it). The book's ``<img>`` carries it
        (:mod:`lib.site.figure_alt`); an empty or one-word text is an error.
    close : bool
        Close the figure after rendering.
    dpi : int
    """
    import base64
    import io

    from IPython.display import display

    if not hasattr(fig, "savefig"):
        raise TypeError(f"figure {name!r} must be a matplotlib Figure, got {type(fig).__name__}")
    _check_name(name)
    if not isinstance(alt, str) or len(alt.split()) < 3:
        raise ValueError(f"figure {name!r} needs alt text saying what it shows (at least three words), got {alt!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    w, h = fig.get_size_inches() * dpi
    bundle = {
        GLUE_PREFIX + "image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
        GLUE_PREFIX + "text/plain": f"<Figure size {w:.0f}x{h:.0f}>",
    }
    display(bundle, raw=True, metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX},
                                        "image/png": {"alt": " ".join(alt.split())}})
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)


def table(name: str, df: Any) -> None:
    """Glue a pandas DataFrame (rendered as an HTML table) under ``name``."""
    import pandas as pd
    from pandas.io.formats.style import Styler

    if not isinstance(df, (pd.DataFrame, Styler)):
        raise TypeError(f"table {name!r} must be a pandas DataFrame or Styler, got {type(df).__name__}")
    _glue(name, df)


def admonition(kind: str, title: str, body_markdown: str) -> None:
    """Display a visible admonition box (``note``, ``tip``, ``warning``, ``important``, ``danger``).

    The output carries HTML with the Sphinx admonition classes (so the book theme styles
    it), Markdown for Markdown-only front ends and plain text for logs.
    """
    from IPython.display import display
    from markdown_it import MarkdownIt

    kinds = ("note", "tip", "warning", "important", "danger", "attention", "caution", "hint", "error", "seealso")
    if kind not in kinds:
        raise ValueError(f"admonition kind must be one of {kinds}, got {kind!r}")
    body_html = MarkdownIt("commonmark").render(body_markdown)
    html_text = (
        f'<div class="admonition {kind}">'
        f'<p class="admonition-title">{html.escape(title)}</p>{body_html}</div>'
    )
    bundle = {
        "text/html": html_text,
        "text/markdown": f"**{title}**\n\n{body_markdown}",
        "text/plain": f"[{kind.upper()}] {title}\n{body_markdown}",
    }
    display(bundle, raw=True)


def data_fallback(dataset: str, reason: str) -> None:
    """Say, visibly, that a section runs on synthetic data because ``dataset`` is absent; record it for the run.

    The notice names the dataset, the whole reason it could not be had (the full message
    :func:`lib.core.registry.fetch` raised, even when the chapter passes only part of it),
    its public source and how to make it available. Inside a run the dataset's
    ``data_source`` is recorded as ``synthetic (<reason>)`` for ``metrics.json`` and
    ``provenance.json``.

    Raises
    ------
    lib.core.registry.ChecksumError
        This run found a corrupt or incomplete copy of ``dataset``: that is never a reason to
        fall back, so the error is raised again even if the chapter caught it.
    lib.core.registry.SyntheticFallbackError
        The run's profile forbids synthetic fallback (``_profile.synthetic_fallback: false``,
        the default of ``paper``).
    """
    from lib.core import registry

    recorded = registry.recorded_data_sources().get(dataset, "")
    if recorded.startswith("error ("):
        raise registry.ChecksumError(recorded[len("error ("):-1])
    full = registry.last_unavailable_reason(dataset)
    if full and (not reason or full.startswith(reason.strip().rstrip(".")) or reason.startswith(full)):
        reason = full
    if not registry.synthetic_fallback_allowed():
        registry.record_data_source(dataset, f"error (absent; synthetic fallback not allowed: {reason})")
        raise registry.SyntheticFallbackError(
            f"dataset {dataset!r} is unavailable and this profile does not allow a synthetic fallback "
            f"(_profile.synthetic_fallback is false): {reason} Make the data available "
            f"(`python -m lib data fetch {dataset}`, or set {registry.MIRROR_ENV}) and run again."
        )
    registry.record_data_source(dataset, f"synthetic ({reason})")
    try:
        ds = registry.get(dataset)
        howto = registry.how_to_obtain(ds)
    except KeyError:
        howto = f"Dataset {dataset!r} is not in the registry."
    admonition(
        "warning",
        f"Real data unavailable: this section runs on the synthetic fallback ({dataset})",
        f"{reason}\n\n{howto}\n\nNumbers below therefore come from synthetic data, not from the real dataset.",
    )


def show_provenance(record: dict[str, Any]) -> None:
    """Display a provenance record as a collapsed ``<details>`` block (first cell of executed notebooks)."""
    from IPython.display import display

    git = record.get("git") or {}
    commit = git.get("commit") or "unknown (no git checkout)"
    if git.get("dirty"):
        commit += " + uncommitted changes"
    dev = record.get("device") or {}
    versions = record.get("versions") or {}
    summary = (
        f"Provenance: {record.get('study')} · profile <b>{html.escape(str(record.get('profile')))}</b> · "
        f"seed {record.get('seed')} · {html.escape(str(dev.get('device')))} · commit {html.escape(commit[:12])}"
    )
    rows = [
        ("git commit", commit),
        ("parameter file SHA-256", record.get("params_sha256")),
        ("parameters", json.dumps(record.get("parameters"), default=str)),
        ("device", f"{dev.get('device')} ({dev.get('device_name')}), CUDA {dev.get('cuda_version')}"),
        ("started (UTC)", record.get("started")),
        ("platform", (record.get("platform") or {}).get("system")),
    ] + [(f"version: {k}", v) for k, v in versions.items()]
    body = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td><code>{html.escape(str(v))}</code></td></tr>" for k, v in rows
    )
    html_text = f"<details><summary>{summary}</summary><table>{body}</table></details>"
    plain = json.dumps(record, indent=1, default=str)
    display({"text/html": html_text, "text/plain": plain}, raw=True)


def parse_number(text: str) -> float | int | None:
    """Parse the ``text/plain`` repr of a glued value back into a number (``None`` if it is not one)."""
    text = text.strip()
    for prefix in ("np.float64(", "np.float32(", "np.int64(", "np.int32("):
        if text.startswith(prefix) and text.endswith(")"):
            text = text[len(prefix) : -1]
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
