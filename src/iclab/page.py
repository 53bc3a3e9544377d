"""The pieces every self-contained HTML page of iclab is built from (a run's report, a comparison): the style,
figures embedded as base64 PNG, tables, and the document around them. No external assets, so a page opens
offline and can be mailed as one file."""

from __future__ import annotations

import base64
import html
from pathlib import Path

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.92em} td,th{padding:.25em .8em;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left} .muted{color:#777;font-size:.9em}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em} img{max-width:100%}
.key{background:#f3f8ff;border-left:4px solid #4a7fd0;padding:.6em 1em}
"""


def img(path: Path) -> str:
    """An ``<img>`` holding the PNG at ``path`` (base64)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'


def table(header: list[str], rows: list[list[str]], caption: str = "") -> str:
    """A table of already formatted cells (escaped here)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<p>{html.escape(caption)}</p>" if caption else ""
    return f"{cap}<table><tr>{head}</tr>{body}</table>"


def document(title: str, parts: list[str]) -> str:
    """The whole page: ``parts`` (HTML) under ``title``."""
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n"
    )
