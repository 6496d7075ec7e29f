"""Licence and citation: LICENSE, CITATION.cff (valid CFF 1.2.0, in step with pyproject.toml) and the book's footer."""

import hashlib
import json
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "tests" / "fixtures" / "cff-1.2.0-schema.json"
# tests/fixtures/README.md: the schema as shipped in the cffconvert 2.0.0 wheel, unmodified
SCHEMA_SHA256 = "0b8d22140da702d766df318dcff3a91af2f39521298dcf36d76315fd99cc169b"
CC_BY = "https://creativecommons.org/licenses/by/4.0/"


def _cff() -> dict:
    return yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))


def _schema_errors(cff: dict) -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(cff)]


def test_schema_fixture_is_the_recorded_file():
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256, (
        "tests/fixtures/cff-1.2.0-schema.json changed: replace it only with an official schema and update "
        "the checksum here and in tests/fixtures/README.md"
    )


def test_citation_cff_is_valid_cff_1_2_0():
    cff = _cff()
    assert cff["cff-version"] == "1.2.0"
    errors = _schema_errors(cff)
    assert not errors, "CITATION.cff does not validate against the CFF 1.2.0 schema:\n" + "\n".join(errors)


def test_schema_check_rejects_a_broken_file():
    """The validation itself bites: a missing required key, a bad licence id and a bad date are all reported."""
    cff = _cff()
    del cff["authors"]
    cff["license"] = "MIT-ish"
    cff["date-released"] = "7 Dec 2026"
    errors = "\n".join(_schema_errors(cff))
    assert "'authors' is a required property" in errors
    assert "license" in errors and "date-released" in errors


def test_citation_version_matches_pyproject():
    assert str(_cff()["version"]) == _project()["version"]


def test_citation_license_matches_pyproject():
    declared = _project()["license"]
    declared = declared["text"] if isinstance(declared, dict) else declared  # PEP 621 table or PEP 639 string
    assert _cff()["license"] == declared == "MIT"


def test_citation_repository_code_follows_config():
    """``repository-code`` is given exactly when _config.yml names the repository's URL."""
    url = (_config().get("repository") or {}).get("url") or ""
    assert _cff().get("repository-code", "") == url


def test_citation_references_the_four_seeds():
    titles = " | ".join(ref["title"] for ref in _cff()["references"])
    for words in ("perfusion maps", "MultiResUNet", "Vnet", "PGNAA"):
        assert words in titles, f"CITATION.cff references lack the seed about {words!r}: {titles}"


def test_license_file_is_mit_with_scope():
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    holder = _config()["author"]
    assert f"Copyright (c) 2026 {holder}" in text
    assert [a["name"] for a in _cff()["authors"]] == [holder], "LICENSE, CITATION.cff and _config.yml name one author"
    assert "CC-BY-4.0" in text and CC_BY in text, "LICENSE must state the book's text and figures are CC-BY-4.0"
    assert "lib/radiative/reference/" in text, "LICENSE must say that third-party files keep their own licence"


class _Footer(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: dict[str, str] = {}
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag):
        if tag == "a":
            self._href = None

    def handle_data(self, data):
        self.text.append(data)
        if self._href:
            self.links[data.strip()] = self._href


def test_footer_names_both_licences_with_links():
    footer = (_config().get("html") or {}).get("extra_footer") or ""
    parsed = _Footer()
    parsed.feed(footer)
    assert " ".join("".join(parsed.text).split()) == "Code MIT, text CC-BY-4.0"
    assert parsed.links.get("MIT", "").startswith("https://") and "mit" in parsed.links["MIT"].lower()
    assert parsed.links.get("CC-BY-4.0") == CC_BY


def test_footer_reaches_the_theme():
    """Jupyter Book 1 passes ``html.extra_footer`` to sphinx-book-theme, which prints it under every page."""
    jb_config = pytest.importorskip("jupyter_book.config")
    sphinx_config, _ = jb_config.get_final_config(
        user_yaml=REPO / "_config.yml", cli_config={"latex_individualpages": False}, sourcedir=REPO,
        raise_on_invalid=True,
    )
    assert sphinx_config["html_theme_options"]["extra_footer"] == _config()["html"]["extra_footer"]
