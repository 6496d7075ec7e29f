"""Check the built book as a reader meets it: every page opened from the file system in headless Chromium.

``studies check-book`` (``make check-book`` after ``make book``) and the fixture-book test call
:func:`check_site`. The browser is the system's Chromium (Debian package ``chromium``), driven through
Playwright with ``executable_path`` so nothing is downloaded. Every request that is not to the site's
own files is refused, so the check also proves that the site works offline. For every page:

* it loads with no console error, no uncaught exception and no failed request;
* every ``<img>`` has loaded with a nonzero natural size, and has alt text (an empty ``alt`` passes only for a
  decorative image outside figures and cell outputs, or one marked ``role="presentation"`` / ``aria-hidden``);
* the maths is typeset: MathJax rendered every ``.math`` element, reported no error, and no raw TeX
  delimiter (``\\(``, ``\\[``, ``$$``, ``\\begin{``) remains in the text outside code;
* every internal link resolves to a file of the site, and its ``#fragment`` to an element id there;
* nothing is wider than the content column: at 1280 and at 400 px the page never scrolls sideways, and at 1280 px
  no table has content cut behind its own scroll bar (at 400 px a table of many numeric columns may scroll inside
  its own box; the summary lists those);
* glued numbers are present: a study chapter (a page with a *Provenance* box) has glued values, none
  is empty, no glue role is left unrendered, and any expected text given for the page is there;

and once for the site: the search page finds a word taken from a chapter, and lists that chapter.
"""

from __future__ import annotations

import html as _html
import os
import re
import shutil
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "INSTALL_COMMAND",
    "BrowserUnavailableError",
    "PageReport",
    "SiteReport",
    "find_browser",
    "site_pages",
    "pick_search_word",
    "check_site",
    "WIDTHS",
]

#: The one command that installs the browser the check drives (Debian/Ubuntu).
INSTALL_COMMAND = "apt-get install -y --no-install-recommends chromium"
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Pages of the Sphinx machinery rather than of the book (still opened and checked, never searched).
_MACHINERY = {"search.html", "genindex.html", "py-modindex.html"}
#: Text of the collapsed provenance box that every executed study chapter starts with.
_PROVENANCE = "Provenance: "
_RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{")


class BrowserUnavailableError(RuntimeError):
    """No Chromium executable (or no Playwright) is available to open the book."""


@dataclass
class PageReport:
    """What one page looked like in the browser."""

    path: str
    title: str = ""
    redirect: str | None = None
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    network_requests: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    images_without_alt: list[str] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)
    scrolling_tables: list[str] = field(default_factory=list)
    images: int = 0
    formulas: int = 0
    unrendered_math: list[str] = field(default_factory=list)
    raw_tex: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    internal_links: int = 0
    glued: int = 0
    glue_problems: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        """One line per problem found on the page (empty: the page passed)."""
        out: list[str] = []
        named = [
            ("console error", self.console_errors), ("failed request", self.failed_requests),
            ("network request (the site must work offline)", self.network_requests),
            ("image not loaded or of zero size", self.broken_images),
            ("image without alt text (report.figure(..., alt=...) or :alt:)", self.images_without_alt),
            ("maths not rendered", self.unrendered_math),
            ("content wider than the column", self.overflow),
            ("raw TeX left in the text", self.raw_tex), ("broken internal link", self.broken_links),
            ("glued value", self.glue_problems),
        ]
        for label, items in named:
            out += [f"{self.path}: {label}: {item}" for item in items]
        return out


@dataclass
class SiteReport:
    """The result of :func:`check_site`: one :class:`PageReport` per page and the search check."""

    html_dir: Path
    pages: list[PageReport]
    search_word: str | None = None
    search_expected: str | None = None
    search_hits: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    def failures(self) -> list[str]:
        """Every problem on every page, then the search check's."""
        out = [line for page in self.pages for line in page.failures()]
        if self.search_word is None:
            out.append("search: no chapter word to search for (no page has a <h1> title)")
        elif self.search_expected not in self.search_hits:
            out.append(
                f"search: searching {self.search_word!r} did not list {self.search_expected} "
                f"(hits: {self.search_hits or 'none'})"
            )
        return out

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.failures()

    def summary(self) -> str:
        """A table of the pages and what was checked on each, then the failures."""
        rows = [f"{'page':<44} {'images':>6} {'formulas':>8} {'links':>5} {'glued':>5}  result"]
        for p in self.pages:
            rows.append(f"{p.path:<44} {p.images:>6} {p.formulas:>8} {p.internal_links:>5} {p.glued:>5}  "
                        + ("ok" if not p.failures() else f"{len(p.failures())} problem(s)"))
        found = "found" if self.search_expected in self.search_hits else "NOT found"
        rows.append(f"search {self.search_word!r}: {len(self.search_hits)} hit(s), {self.search_expected} {found}")
        scrolling = [f"{p.path}: {t}" for p in self.pages for t in p.scrolling_tables]
        if scrolling:
            rows.append(f"{len(scrolling)} table(s) scroll inside their own box on a phone (not a failure):")
            rows += ["  " + t for t in scrolling]
        fails = self.failures()
        verdict = "all checks passed" if not fails else f"{len(fails)} problem(s)"
        n_pages = sum(1 for p in self.pages if "?" not in p.path)
        rows.append(f"{n_pages} pages and the search checked: {verdict}")
        rows += fails
        return "\n".join(rows)


def find_browser() -> str | None:
    """Path of the Chromium to drive: ``$STUDIES_CHROMIUM`` or the first of chromium, google-chrome on PATH."""
    env = os.environ.get("STUDIES_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def site_pages(html_dir: Path) -> list[str]:
    """The HTML pages of a built site, relative POSIX paths (assets under ``_*`` folders excluded)."""
    html_dir = Path(html_dir)
    pages = [p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")]
    return sorted(p for p in pages if not any(part.startswith("_") for part in p.split("/")[:-1]))


def pick_search_word(html_dir: Path, pages: Sequence[str]) -> tuple[str, str] | None:
    """A word to search for and the page it comes from: the longest word of a chapter's ``<h1>`` title.

    Study chapters (pages with a *Provenance* box) come first, then the other pages except the root
    ``index.html`` and Sphinx machinery, each group in path order; the first page whose title has a word
    of five or more letters is used.
    """
    texts = {rel: (Path(html_dir) / rel).read_text(encoding="utf-8", errors="replace") for rel in pages
             if rel not in _MACHINERY and rel != "index.html"}
    ordered = sorted(texts, key=lambda rel: (_PROVENANCE not in texts[rel], rel))
    for rel in ordered:
        m = re.search(r"<h1[^>]*>(.*?)</h1>", texts[rel], flags=re.S)
        if not m:
            continue
        title = _html.unescape(re.sub(r"<[^>]+>", " ", m.group(1)))
        words = sorted(re.findall(r"[A-Za-z]{5,}", title), key=len, reverse=True)
        if words:
            return words[0], rel
    return None


_PAGE_JS = r"""
async () => {
  for (const img of document.images) { img.loading = "eager"; }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
      new Promise(r => { img.addEventListener("load", r); img.addEventListener("error", r); })));
  const images = Array.from(document.images).map(img => ({src: img.getAttribute("src") || "",
      ok: img.complete && img.naturalWidth > 0 && img.naturalHeight > 0,
      alt: (img.getAttribute("alt") || "").trim(),
      decorative: img.getAttribute("role") === "presentation" || img.getAttribute("aria-hidden") === "true"
                  || (img.hasAttribute("alt") && !img.closest("figure, .cell_output, .output"))}));
  const maths = Array.from(document.querySelectorAll("span.math, div.math"));
  const unrendered = maths.filter(m => !m.querySelector("mjx-container")).map(m => m.textContent.slice(0, 80));
  const merrors = Array.from(document.querySelectorAll("mjx-merror")).map(m => m.textContent.slice(0, 80));
  const body = document.body.cloneNode(true);
  body.querySelectorAll("pre, code, script, style, textarea, mjx-container, .highlight, .cell_input, .cell_output pre")
      .forEach(e => e.remove());
  const links = Array.from(document.querySelectorAll("a[href]")).map(a => a.href);
  const glued = Array.from(document.querySelectorAll(".pasted-text, .pasted-inline, .pasted-math"));
  return {title: document.title, images, formulas: document.querySelectorAll("mjx-container").length,
          unrendered: unrendered.concat(merrors.map(e => "MathJax error: " + e)),
          text: body.innerText, links,
          glued: glued.map(g => g.textContent.trim())};
}
"""


#: Horizontal overflow at the current window width: the page wider than the window, and tables whose content is
#: cut (hidden behind their own scroll bar) or that run past the content column.
_OVERFLOW_JS = r"""
() => {
  const out = {page: null, tables: []};
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth + 1) { out.page = doc.scrollWidth - window.innerWidth; }
  const article = document.querySelector(".bd-article") || document.body;
  const right = article.getBoundingClientRect().right;
  article.querySelectorAll("table").forEach((t, i) => {
    const cut = Math.max(t.scrollWidth - t.clientWidth, t.getBoundingClientRect().right - right);
    if (cut > 1) {
      const head = (t.querySelector("caption, th, td") || {}).textContent || "";
      out.tables.push({index: i, cut: Math.round(cut), head: head.trim().slice(0, 40)});
    }
  });
  return out;
}
"""
#: The window widths the overflow check uses: a laptop and a phone.
WIDTHS = (1280, 400)


def _overflow(page: Any, width: int) -> tuple[list[str], list[str]]:
    """(failures, scrolling tables) at ``width``: page overflow fails at any width, a cut table only on wide screens."""
    page.set_viewport_size({"width": width, "height": 900})
    data = page.evaluate(_OVERFLOW_JS)
    fails = [f"{width} px: the page is {data['page']} px wider than the window"] if data["page"] else []
    tables = [f"{width} px: table #{t['index']} ({t['head']!r}) has {t['cut']} px cut" for t in data["tables"]]
    return (fails + tables, []) if width >= 1000 else (fails, tables)


def _ids(path: Path, cache: dict[Path, set[str]]) -> set[str]:
    if path not in cache:
        text = path.read_text(encoding="utf-8", errors="replace")
        cache[path] = {_html.unescape(m) for m in re.findall(r'\b(?:id|name)="([^"]+)"', text)}
    return cache[path]


def _check_link(href: str, site: Path, cache: dict[Path, set[str]]) -> str | None:
    """``None`` when ``href`` (an absolute file:// URL) resolves inside the site, else the problem."""
    url = urllib.parse.urlsplit(href)
    target = Path(urllib.parse.unquote(url.path))
    try:
        target.resolve().relative_to(site)
    except ValueError:
        return f"{href} points outside the site"
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{href}: no such file"
    frag = urllib.parse.unquote(url.fragment)
    if frag and target.suffix == ".html" and frag not in _ids(target, cache):
        return f"{href}: no element with id {frag!r}"
    return None


def _launch(playwright: Any, browser: str) -> Any:
    return playwright.chromium.launch(
        executable_path=browser, headless=True,
        args=["--no-sandbox", "--allow-file-access-from-files", "--disable-gpu", "--no-first-run"],
    )


def _open(context: Any, url: str, report: PageReport, timeout_ms: int) -> Any:
    page = context.new_page()
    page.on("console", lambda msg: report.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: report.console_errors.append(f"uncaught: {err}"))
    page.on("requestfailed", lambda req: None if req.url.startswith(("http:", "https:"))
            else report.failed_requests.append(f"{req.url} ({req.failure})"))
    page.goto(url, wait_until="load", timeout=timeout_ms)
    return page


def _evaluate(page: Any, attempts: int = 5) -> dict[str, Any]:
    """Run the page script, waiting out a navigation (a meta-refresh redirect) that replaces the page."""
    for attempt in range(attempts):
        try:
            page.wait_for_load_state("load")
            return page.evaluate(_PAGE_JS)
        except Exception as err:  # noqa: BLE001 - playwright raises a plain Error on a navigation
            if "context was destroyed" not in str(err) or attempt == attempts - 1:
                raise
            page.wait_for_timeout(200)
    raise AssertionError("unreachable")


def check_site(
    html_dir: str | Path,
    *,
    expected_text: Mapping[str, Sequence[str]] | None = None,
    search: tuple[str, str] | None = None,
    browser: str | None = None,
    screenshot: str | Path | None = None,
    timeout_s: float = 60.0,
) -> SiteReport:
    """Open every page of the built site in headless Chromium and check it (see the module docstring).

    Parameters
    ----------
    html_dir
        The built site, e.g. ``_build/html``.
    expected_text
        Page (relative path) -> strings that must appear among its glued values or its text, e.g.
        ``{"book/demo/demo.html": ["42.00"]}``.
    search
        ``(word, page)``: search ``word`` and expect ``page`` among the hits; default: the longest
        word of the first chapter's title (:func:`pick_search_word`).
    browser
        Chromium executable; default :func:`find_browser`.
    screenshot
        Write a PNG of the first page with typeset maths, scrolled to its first formula, here.
    timeout_s
        Time limit per page load (seconds).

    Raises
    ------
    BrowserUnavailableError
        No Chromium or no Playwright; the message gives the command that installs it.
    FileNotFoundError
        ``html_dir`` holds no ``index.html``.
    """
    site = Path(html_dir).resolve()
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} holds no index.html: build the book first (make book)")
    browser = browser or find_browser()
    if browser is None:
        raise BrowserUnavailableError(f"no Chromium found (checked $STUDIES_CHROMIUM and {', '.join(_CANDIDATES)}); "
                                      f"install it with: {INSTALL_COMMAND}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise BrowserUnavailableError("the Python package playwright is missing: "
                                      "pip install -r requirements/lock.txt") from err

    timeout_ms = int(timeout_s * 1000)
    pages = site_pages(site)
    expected_text = dict(expected_text or {})
    unknown = set(expected_text) - set(pages)
    if unknown:
        raise ValueError(f"expected_text names pages the site does not have: {sorted(unknown)}; pages: {pages}")
    search = search or pick_search_word(site, pages)
    reports: list[PageReport] = []
    ids: dict[Path, set[str]] = {}
    shot: Path | None = None
    with sync_playwright() as pw:
        b = _launch(pw, browser)
        context = b.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=True)
        context.set_default_timeout(timeout_ms)
        reports_by_url: dict[str, PageReport] = {}
        current: list[PageReport] = []

        def guard(route: Any) -> None:  # the site must not need the network
            url = route.request.url
            if url.startswith(("file:", "data:", "blob:", "about:")):
                route.continue_()
                return
            owner = reports_by_url.get(route.request.frame.url) if route.request.frame else None
            if owner is None and current:  # a redirected page: charge the page being checked
                owner = current[-1]
            if owner is not None:
                owner.network_requests.append(url)
            route.abort()

        context.route("**/*", guard)
        for rel in pages:
            report = PageReport(rel)
            url = (site / rel).as_uri()
            reports_by_url[url] = report
            current.append(report)
            page = _open(context, url, report, timeout_ms)
            data = _evaluate(page)
            if page.url != url:  # a redirect page (the root index.html): the target is what the reader sees
                report.redirect = page.url
                report.broken_links += [p for p in [_check_link(page.url, site, ids)] if p]
            report.title = data["title"]
            report.images = len(data["images"])
            report.broken_images = [i["src"] for i in data["images"] if not i["ok"]]
            report.images_without_alt = [i["src"][:80] for i in data["images"] if not i["alt"] and not i["decorative"]]
            report.formulas = data["formulas"]
            report.unrendered_math = data["unrendered"]
            report.raw_tex = sorted({data["text"][max(0, m.start() - 30):m.end() + 30].replace("\n", " ")
                                     for m in _RAW_TEX.finditer(data["text"])})
            internal = [h for h in data["links"] if h.startswith("file:")]
            report.internal_links = len(internal)
            report.broken_links = sorted({p for h in internal if (p := _check_link(h, site, ids))})
            report.glued = len(data["glued"])
            report.glue_problems = [f"empty glued value #{i}" for i, g in enumerate(data["glued"]) if not g]
            if _PROVENANCE in data["text"] and not data["glued"]:
                report.glue_problems.append("a study chapter without any glued value")
            if "{glue:" in data["text"]:
                report.glue_problems.append("an unrendered {glue:...} role is left in the text")
            haystack = "\n".join(data["glued"]) + "\n" + data["text"]
            report.glue_problems += [f"expected {t!r} not on the page"
                                     for t in expected_text.get(rel, ()) if t not in haystack]
            for width in WIDTHS:
                fails, scrolling = _overflow(page, width)
                report.overflow += fails
                report.scrolling_tables += scrolling
            page.set_viewport_size({"width": WIDTHS[0], "height": 900})
            if screenshot is not None and shot is None and report.formulas:
                page.locator("mjx-container").first.evaluate("e => e.scrollIntoView({block: 'center'})")
                shot = Path(screenshot)
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot))
            page.close()
            reports.append(report)

        hits: list[str] = []
        if search is not None:
            word, _ = search
            report = PageReport("search.html?q=" + word)
            url = (site / "search.html").as_uri() + "?q=" + urllib.parse.quote(word)
            reports_by_url[url] = report
            current.append(report)
            page = _open(context, url, report, timeout_ms)
            try:
                page.wait_for_function(
                    "() => { const s = document.querySelector('#search-results'); "
                    "return s && (s.querySelector('ul.search li') || "
                    "/did not match|found \\d+ page/i.test(s.innerText)); }",
                    timeout=timeout_ms,
                )
            except Exception as err:  # noqa: BLE001 - reported as a failed check, not a crash
                report.console_errors.append(f"search page produced no results list: {type(err).__name__}")
            for href in page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.href)"):
                path = Path(urllib.parse.unquote(urllib.parse.urlsplit(href).path))
                try:
                    hits.append(path.resolve().relative_to(site).as_posix())
                except ValueError:
                    hits.append(href)
            page.close()
            reports.append(report)
        b.close()
    return SiteReport(site, reports, search_word=search[0] if search else None,
                      search_expected=search[1] if search else None, search_hits=sorted(set(hits)), screenshot=shot)
