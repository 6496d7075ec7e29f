"""Alternative text for the book's figures: the ``alt`` that :func:`lib.core.report.figure` records reaches ``<img>``.

myst-nb renders a glued PNG with the image options of its ``{glue:figure}`` directive and of the cell, and reads only
``width`` and ``height`` from the output's own metadata. :func:`lib.core.report.figure` records the figure's alt text
in that metadata (``{"image/png": {"alt": ...}}``); this mime-render plugin, registered in ``pyproject.toml`` under the
entry-point group ``myst_nb.mime_renderers``, renders such an output with myst-nb's own image renderer and sets the
image node's ``alt`` from it. A ``:alt:`` option written on the directive wins.

References
----------
myst-nb, "Customise the render", https://myst-nb.readthedocs.io/en/latest/render/format_code_cells.html
"""

from __future__ import annotations

from typing import Any, ClassVar

from docutils import nodes

__all__ = ["AltTextImages", "output_alt"]


def output_alt(mime_type: str, output_metadata: dict[str, Any]) -> str | None:
    """The alt text an output's metadata records for ``mime_type`` (``None`` when none or blank)."""
    meta = output_metadata.get(mime_type)
    alt = meta.get("alt") if isinstance(meta, dict) else None
    return " ".join(alt.split()) if isinstance(alt, str) and alt.strip() else None


class AltTextImages:
    """myst-nb mime renderer: images whose output metadata carries ``alt`` get it on their ``<img>``."""

    mime_priority_overrides: ClassVar[list[tuple[str, str, int | None]]] = []

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[nodes.Element] | None:
        """Render ``data`` with myst-nb's image renderer and add the recorded alt text; ``None`` for other outputs."""
        if not str(data.mime_type).startswith("image/"):
            return None
        alt = output_alt(data.mime_type, data.output_metadata or {})
        if alt is None:
            return None
        out = renderer.render_image_inline(data) if inline else renderer.render_image(data)
        for node in out:
            for img in node.findall(nodes.image) if isinstance(node, nodes.Node) else ():
                if not img.get("alt"):
                    img["alt"] = alt
        return out
