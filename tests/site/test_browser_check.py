"""The built fixture book opened in headless Chromium: every page loads, maths renders offline, links resolve.

Also: the checker fails a site with a missing image, a broken link, un-typeset maths or a console error
(so a pass means something), MathJax is served from the site, pinned and checksum-verified.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lib.site import browser_check, mathjax
from lib.site.browser_check import INSTALL_COMMAND, check_site, find_browser, site_pages

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "minibook"


def _needs_browser() -> str:
    browser = find_browser()
    if browser is None:
        pytest.skip(f"no Chromium for the real-browser test; install it with: {INSTALL_COMMAND}")
    pytest.importorskip("playwright.sync_api", reason="pip install -r requirements/lock.txt")
    return browser


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture mini-book with the real config and the real execution page, built once for the module."""
    from lib.site.book import build_book

    dest = tmp_path_factory.mktemp("site") / "minibook"
    shutil.copytree(FIXTURE, dest)
    shutil.copy2(REPO / "_config.yml", dest / "_config.yml")
    for name in ("references.bib", "references.md"):
        shutil.copy2(REPO / "book" / name, dest / "book" / name)
    page = (REPO / "book" / "execution.md").read_text(encoding="utf-8")
    (dest / "book" / "execution.md").write_text(page.replace("{doc}`results`", "the results page"), encoding="utf-8")
    toc = dest / "_toc.yml"
    toc.write_text(toc.read_text() + "  - file: book/execution\n")
    with pytest.MonkeyPatch.context() as mp:  # the build's Sphinx extensions come from this checkout's lib/
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        mp.delenv("STUDIES_REPOSITORY_URL", raising=False)
        return build_book("lab", root=dest, progress=False)


def test_mathjax_is_served_from_the_site_pinned_and_verified(built_site):
    page = (built_site / "book" / "demo" / "demo.html").read_text()
    assert 'src="../../_static/mathjax/tex-chtml.js"' in page
    assert "cdn.jsdelivr" not in page and "mathjax@" not in page
    root, digests = mathjax.verify()
    assert mathjax.ENTRY in digests and len(digests) > 50
    served = built_site / "_static" / "mathjax" / mathjax.ENTRY
    assert served.read_bytes() == (root / mathjax.ENTRY).read_bytes()
    assert f'VERSION="{mathjax.MATHJAX_VERSION}"'.encode() in served.read_bytes()


def test_mathjax_integrity_failure_is_loud(monkeypatch):
    monkeypatch.setattr(mathjax, "MANIFEST_SHA256", "0" * 64)
    with pytest.raises(mathjax.MathJaxIntegrityError, match="not the pinned set.*pip install --force-reinstall"):
        mathjax.verify()


def test_fixture_book_passes_in_a_real_browser(built_site, tmp_path):
    browser = _needs_browser()
    shot = tmp_path / "maths.png"
    report = check_site(built_site, expected_text={"book/demo/demo.html": ["42.00"],
                                                   "book/execution.html": ["lab", "ok", "no dataset read"]},
                        browser=browser, screenshot=shot)
    assert report.ok, report.summary()
    by_path = {p.path: p for p in report.pages}
    assert set(site_pages(built_site)) <= set(by_path)
    assert len(site_pages(built_site)) >= 7  # index, intro, demo, references, summary, execution, search, genindex
    demo = by_path["book/demo/demo.html"]
    assert demo.images >= 1 and demo.formulas >= 2 and demo.glued >= 1 and demo.internal_links > 0
    # the alt text report.figure recorded reaches the <img> (lib.site.figure_alt, a myst-nb mime renderer)
    html = (built_site / "book" / "demo" / "demo.html").read_text()
    assert 'alt="Line plot of ' in html and " times the index against the index, for " in html
    assert report.search_word and report.search_expected in report.search_hits
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checker_catches_a_broken_site(built_site, tmp_path):
    browser = _needs_browser()
    broken = tmp_path / "html"
    shutil.copytree(built_site, broken)
    demo = broken / "book" / "demo" / "demo.html"
    text = demo.read_text()
    text = text.replace("</article>", '<a href="nowhere.html">x</a><a href="../intro.html#no-such-id">y</a>'
                        '<img src="missing.png"><script>console.error("boom")</script>'
                        '<table><tr><td style="white-space:nowrap">' + "wide " * 400 + '</td></tr></table>'
                        '<div style="width:3000px;overflow:visible">wide block</div></article>', 1)
    demo.write_text(text)
    (broken / "_static" / "mathjax" / mathjax.ENTRY).unlink()  # no MathJax: the maths stays TeX
    report = check_site(broken, browser=browser, search=("nothingmatcheszzz", "book/demo/demo.html"))
    assert not report.ok
    problems = "\n".join(report.failures())
    assert "broken internal link" in problems and "nowhere.html: no such file" in problems
    assert "no element with id 'no-such-id'" in problems
    assert "image not loaded" in problems and "missing.png" in problems
    assert "image without alt text" in problems
    assert "content wider than the column: 1280 px: table #" in problems and "px cut" in problems
    assert "content wider than the column: 400 px: the page is" in problems
    assert "console error: boom" in problems
    assert "maths not rendered" in problems and "raw TeX left in the text" in problems
    assert "failed request" in problems and "tex-chtml.js" in problems
    assert "did not list book/demo/demo.html" in problems


def test_network_requests_are_refused_and_reported(built_site, tmp_path):
    browser = _needs_browser()
    site = tmp_path / "html"
    shutil.copytree(built_site, site)
    intro = site / "book" / "intro.html"
    script = '<script src="https://cdn.example.org/x.js"></script>'
    intro.write_text(intro.read_text().replace("</head>", script + "</head>", 1))
    report = check_site(site, browser=browser)
    assert any("cdn.example.org" in line and "offline" in line for line in report.failures())


def test_without_a_browser_the_error_names_the_install_command(built_site, monkeypatch):
    monkeypatch.setenv("STUDIES_CHROMIUM", "/nonexistent/chromium")
    assert find_browser() is None
    with pytest.raises(browser_check.BrowserUnavailableError, match=INSTALL_COMMAND):
        check_site(built_site)


def test_unbuilt_site_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="make book"):
        check_site(tmp_path)


def test_cli_check_book(built_site, tmp_path, capsys):
    _needs_browser()
    from lib.cli import main

    shot = tmp_path / "maths.png"
    assert main(["check-book", "--html", str(built_site), "--screenshot", str(shot)]) == 0
    out = capsys.readouterr().out
    assert "pages and the search checked: all checks passed" in out and shot.is_file()
    assert main(["check-book", "--html", str(tmp_path / "missing")]) == 2
    assert "make book" in capsys.readouterr().err
