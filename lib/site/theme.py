"""A Sphinx extension with fixes to the book's theme stack: two found by the real-browser check, one for launch links,
and the book's style sheet (``static/studies.css``: wide tables wrap and stay inside the content column).

Listed in ``_config.yml`` under ``sphinx.extra_extensions``. Without the first two, every page of the book
logs console errors in Chromium (see :mod:`lib.site.browser_check`):

* ``Identifier 'THEBE_JS_URL' has already been declared``: ``sphinx-thebe`` 0.3 adds its inline
  configuration script once per ``env-before-read-docs`` event, which Jupyter Book emits more than once,
  so each page declares the same ``const`` twice and the second script throws. The fix drops repeated
  identical inline scripts from each page.
* ``Got invalid theme mode: . Resetting to auto.``: the pydata theme's page template reads a
  ``default_mode`` variable that neither it nor sphinx-book-theme defines, so on the first page a reader
  opens (empty ``localStorage``) the mode is empty and the theme reports it. The fix sets the variable to
  ``auto`` (follow the reader's system, what the theme falls back to anyway) when it is empty.

The third concerns the launch buttons (on when ``repository.url`` is set, :mod:`lib.site.publish`).
The book is built from a staged copy in which each chapter is its executed ``.ipynb``, so the theme links
Binder and Colab to ``book/<study>/<study>.ipynb``, a file the repository does not have (it holds the
MyST ``.md``; executed notebooks are never committed). The fix points Binder at the ``.md`` (Binder's
environment has Jupytext, which opens it as a notebook) and Colab, which opens only ``.ipynb`` files
on GitHub, at the executed notebook that the published site carries on the ``gh-pages`` branch
(``_sources/<page>.ipynb``); a page with no notebook there gets no Colab button.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["STYLE_SHEET", "dedupe_inline_scripts", "fix_launch_links", "setup"]

#: The branch :func:`lib.site.publish.publish` puts the site on.
PAGES_BRANCH = "gh-pages"


def dedupe_inline_scripts(scripts: list[Any]) -> list[Any]:
    """``scripts`` without repeats of an inline script (same ``body``); file scripts are kept as they are."""
    seen: set[str] = set()
    kept: list[Any] = []
    for js in scripts:
        body = getattr(js, "attributes", {}).get("body") if not isinstance(js, str) else None
        if body:
            if body in seen:
                continue
            seen.add(body)
        kept.append(js)
    return kept


def fix_launch_links(buttons: list[Any], pagename: str, suffix: str) -> list[Any]:
    """The theme's header buttons with the Binder and Colab links fixed (see the module docstring)."""
    out: list[Any] = []
    for button in buttons:
        if isinstance(button, dict) and isinstance(button.get("buttons"), list):
            button = {**button, "buttons": fix_launch_links(button["buttons"], pagename, suffix)}
            if not button["buttons"]:
                continue
        elif isinstance(button, dict) and button.get("text") == "Binder" and suffix == ".ipynb":
            button = {**button, "url": button["url"].replace(f"{pagename}.ipynb", f"{pagename}.md")}
        elif isinstance(button, dict) and button.get("text") == "Colab":
            if suffix != ".ipynb":
                continue
            url = re.sub(r"/blob/[^/]+/.*$", f"/blob/{PAGES_BRANCH}/_sources/{pagename}.ipynb", button["url"])
            button = {**button, "url": url}
        out.append(button)
    return out


def _page_context(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    if "script_files" in context:
        context["script_files"] = dedupe_inline_scripts(list(context["script_files"]))
    if not context.get("default_mode"):
        context["default_mode"] = "auto"
    if context.get("header_buttons"):
        suffix = context.get("page_source_suffix") or ""
        context["header_buttons"] = fix_launch_links(list(context["header_buttons"]), pagename, suffix)


#: The book's style sheet (wide tables wrap and stay inside the content column), served from ``_static``.
STYLE_SHEET = Path(__file__).with_name("static") / "studies.css"


def _add_static(app: Any) -> None:
    app.config.html_static_path.append(str(STYLE_SHEET.parent))


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point."""
    app.connect("html-page-context", _page_context, priority=900)  # after the extensions that add scripts
    app.connect("builder-inited", _add_static)
    app.add_css_file(STYLE_SHEET.name)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
