"""The alt text that lib.core.report.figure records reaches the rendered image node (lib.site.figure_alt)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from docutils import nodes

from lib.site.figure_alt import AltTextImages, output_alt


@dataclass
class _Data:
    mime_type: str
    output_metadata: dict[str, Any] = field(default_factory=dict)


class _Renderer:
    """Stands in for myst-nb's NbElementRenderer: returns what its image renderer would."""

    def __init__(self, alt: str | None = None):
        self.calls: list[str] = []
        self.alt = alt

    def _image(self) -> list[nodes.Element]:
        img = nodes.image(uri="fig.png")
        if self.alt is not None:
            img["alt"] = self.alt
        return [img]

    def render_image(self, data: _Data) -> list[nodes.Element]:
        self.calls.append("block")
        return self._image()

    def render_image_inline(self, data: _Data) -> list[nodes.Element]:
        self.calls.append("inline")
        return self._image()


def test_recorded_alt_reaches_the_image_node():
    r = _Renderer()
    out = AltTextImages.handle_mime(r, _Data("image/png", {"image/png": {"alt": "Two  panels:\n loss and Dice"}}), False)
    assert r.calls == ["block"] and out[0]["alt"] == "Two panels: loss and Dice"
    AltTextImages.handle_mime(r, _Data("image/png", {"image/png": {"alt": "inline figure text"}}), True)
    assert r.calls[-1] == "inline"


def test_directive_alt_wins_and_other_outputs_are_left_to_myst_nb():
    r = _Renderer(alt="written on the directive")
    out = AltTextImages.handle_mime(r, _Data("image/png", {"image/png": {"alt": "recorded"}}), False)
    assert out[0]["alt"] == "written on the directive"
    assert AltTextImages.handle_mime(r, _Data("text/html", {"text/html": {"alt": "x"}}), False) is None
    assert AltTextImages.handle_mime(r, _Data("image/png", {}), False) is None  # no record: myst-nb's default
    assert output_alt("image/png", {"image/png": {"alt": "   "}}) is None
    assert output_alt("image/png", {"image/png": "not a dict"}) is None


def test_the_plugin_is_registered_for_myst_nb():
    eps = entry_points().select(group="myst_nb.mime_renderers")
    assert any(ep.value == "lib.site.figure_alt:AltTextImages" for ep in eps), "reinstall: make venv"
