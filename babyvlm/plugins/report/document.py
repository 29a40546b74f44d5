"""A small document model rendered twice: as Markdown (``report.md``) and as one self-contained HTML
file (``report.html``, images inlined as base64 ``data:`` URIs, styles inline). Building the report
once as blocks keeps the two renderings identical in content."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Image:
    """A PNG: ``path`` is relative to the report (Markdown); ``data`` is inlined in the HTML."""

    path: str
    alt: str
    data: bytes = field(repr=False, default=b"")


Block = Heading | Paragraph | Bullets | Table | Image


def render_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            parts.append(_markdown_table(block))
        elif isinstance(block, Image):
            parts.append(f"![{block.alt}]({block.path})")
    return "\n\n".join(parts) + "\n"


def _markdown_table(table: Table) -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    lines = [row(table.header), "|" + "|".join("---" for _ in table.header) + "|"]
    lines += [row(cells) for cells in table.rows]
    if table.caption:
        lines.append(f"\n{table.caption}")
    return "\n".join(lines)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f2f2f2; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 0.2em; }
.caption { color: #555; font-size: 0.85em; }
"""


def render_html(blocks: list[Block], title: str) -> str:
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 6)
            body.append(f"<h{level}>{_inline(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            body.append(_html_table(block))
        elif isinstance(block, Image):
            encoded = base64.b64encode(block.data).decode("ascii")
            body.append(f'<p><img alt="{html.escape(block.alt)}" src="data:image/png;base64,{encoded}"></p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_inline(cell)}</th>" for cell in table.header)
    rows = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in cells) + "</tr>" for cells in table.rows)
    caption = f'<p class="caption">{_inline(table.caption)}</p>' if table.caption else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{caption}"


def _inline(text: str) -> str:
    """Escape text, then render the two inline marks the report uses: ``code`` and **bold**."""
    escaped = html.escape(text)
    out, code, bold = [], False, False
    index = 0
    while index < len(escaped):
        if escaped.startswith("**", index) and not code:
            out.append("</b>" if bold else "<b>")
            bold, index = not bold, index + 2
        elif escaped[index] == "`":
            out.append("</code>" if code else "<code>")
            code, index = not code, index + 1
        else:
            out.append(escaped[index])
            index += 1
    if bold:
        out.append("</b>")
    if code:
        out.append("</code>")
    return "".join(out)
