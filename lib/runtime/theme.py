"""A Sphinx extension with two fixes to the book's theme stack, found by the real-browser check.

Listed in ``_config.yml`` under ``sphinx.extra_extensions``. Without it, every page of the book logs
console errors in Chromium (see :mod:`lib.runtime.browser_check`):

* ``Identifier 'THEBE_JS_URL' has already been declared``: ``sphinx-thebe`` 0.3 adds its inline
  configuration script once per ``env-before-read-docs`` event, which Jupyter Book emits more than once,
  so each page declares the same ``const`` twice and the second script throws. The fix drops repeated
  identical inline scripts from each page.
* ``Got invalid theme mode: . Resetting to auto.``: the pydata theme's page template reads a
  ``default_mode`` variable that neither it nor sphinx-book-theme defines, so on the first page a reader
  opens (empty ``localStorage``) the mode is empty and the theme reports it. The fix sets the variable to
  ``auto`` (follow the reader's system, what the theme falls back to anyway) when it is empty.
"""

from __future__ import annotations

from typing import Any

__all__ = ["dedupe_inline_scripts", "setup"]


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


def _page_context(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    if "script_files" in context:
        context["script_files"] = dedupe_inline_scripts(list(context["script_files"]))
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point."""
    app.connect("html-page-context", _page_context, priority=900)  # after the extensions that add scripts
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
