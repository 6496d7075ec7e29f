"""The published site: the book build (:mod:`~lib.site.book`), its theme fixes (:mod:`~lib.site.theme`), offline
maths (:mod:`~lib.site.mathjax`), figure alt text (:mod:`~lib.site.figure_alt`), the headless-browser check (:mod:`~lib.site.browser_check`), publishing
(:mod:`~lib.site.publish`) and lab editions (:mod:`~lib.site.export`).

It may use the runner (:mod:`lib.runtime`) and the generated pages (:mod:`lib.pages`); nothing a chapter's run
depends on imports it, so editing it leaves every run current.
"""

__all__ = ["book", "theme", "mathjax", "figure_alt", "browser_check", "publish", "export"]
