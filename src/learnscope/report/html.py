"""One self-contained HTML page: inline CSS, PNG images as base64 data URIs, no scripts, no
external resources, so it opens from disk with no network."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1400px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr));
       gap: 0 1.5em; }
section.panel { border-top: 1px solid #ddd; padding-top: .4em; min-width: 0; }
section.wide { grid-column: 1 / -1; }
.run { display: flex; flex-wrap: wrap; gap: 0 1.5em; align-items: flex-start; }
.run h3, .run > p { flex-basis: 100%; margin: .3em 0; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
pre { background: #f7f7f7; padding: .6em; font-size: .8em; overflow-x: auto; }
img { max-width: 100%; height: auto; display: block; }
.note { color: #666; font-size: .9em; }
"""


@dataclass
class Panel:
    """One section of the page: ``png`` bytes (a figure) and/or ``body`` (trusted HTML)."""

    id: str
    title: str
    png: bytes | None = None
    body: str = ""
    caption: str = ""
    wide: bool = False  # spans the page (figures with a heat map beside the lines)


def esc(text: object) -> str:
    return html.escape(str(text))


def table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(title: str, panels: list[Panel], notes: list[str], subtitle: str = "") -> str:
    """The page: a title, one ``<section class="panel" id="panel-ID" data-panel="ID">`` per
    panel, and the notes on panels left out."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="note">{esc(subtitle)}</p>')
    parts.append("<main>")
    for p in panels:
        wide = " wide" if p.png is None or p.wide else ""
        parts.append(
            f'<section class="panel{wide}" id="panel-{esc(p.id)}" data-panel="{esc(p.id)}">'
        )
        parts.append(f"<h2>{esc(p.title)}</h2>")
        if p.body:
            parts.append(p.body)
        if p.png is not None:
            data = base64.b64encode(p.png).decode("ascii")
            parts.append(
                f'<img alt="{esc(p.title)}" data-panel-image="{esc(p.id)}" '
                f'src="data:image/png;base64,{data}">'
            )
        if p.caption:
            parts.append(f'<p class="note">{esc(p.caption)}</p>')
        parts.append("</section>")
    if notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in notes)
        parts.append(
            '<section class="panel wide" id="panel-notes" data-panel="notes">'
            f'<h2>Panels left out</h2><ul class="note">{items}</ul></section>'
        )
    parts.append("</main></body></html>")
    return "\n".join(parts)
