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
.py-kw{color:#0033b3;font-weight:600} .py-str{color:#067d17} .py-com{color:#8c8c8c;font-style:italic}
.py-num{color:#1750eb} .py-def{color:#00627a;font-weight:600} summary{cursor:pointer;font-weight:600}
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


def highlight_python(source: str) -> str:
    """``source`` as escaped HTML with keywords, strings, comments, numbers and defined names in coloured spans
    (Python's own tokenizer; no external highlighter)."""
    import io
    import keyword
    import tokenize

    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    out, at, previous = [], 0, ""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return html.escape(source)
    for tok in tokens:
        start = starts[tok.start[0] - 1] + tok.start[1]
        end = starts[tok.end[0] - 1] + tok.end[1]
        if start < at:
            continue
        out.append(html.escape(source[at:start]))
        text = html.escape(source[start:end])
        css = None
        if tok.type == tokenize.NAME and keyword.iskeyword(tok.string):
            css = "py-kw"
        elif tok.type == tokenize.NAME and previous in ("def", "class"):
            css = "py-def"
        elif tok.type == tokenize.STRING:
            css = "py-str"
        elif tok.type == tokenize.COMMENT:
            css = "py-com"
        elif tok.type == tokenize.NUMBER:
            css = "py-num"
        out.append(f'<span class="{css}">{text}</span>' if css else text)
        at = end
        if tok.type == tokenize.NAME:
            previous = tok.string
    out.append(html.escape(source[at:]))
    return "".join(out)


def document(title: str, parts: list[str]) -> str:
    """The whole page: ``parts`` (HTML) under ``title``."""
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n"
    )
