"""The document rendered to markdown and to a self-contained HTML page.

Untrusted text is escaped for markdown (HTML entities and markdown specials) and with
`html.escape` for HTML. The page has no external references: inline CSS, plots as base64 data
URIs. Rendering is deterministic: the same blocks give the same bytes.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence

from agentbench.experiments.report.document import (
    Block,
    Bullets,
    Code,
    Heading,
    Inline,
    Para,
    Table,
    Text,
    Untrusted,
)

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def _md_inline(part: Inline, in_table: bool) -> str:
    if isinstance(part, Untrusted):
        text = " ".join(part.text.split())
        text = html.escape(text, quote=False)  # raw HTML in markdown is rendered: escape it
        return _MD_SPECIAL.sub(r"\\\1", text)
    if isinstance(part, Code):
        text = " ".join(part.text.split())
        if in_table:  # a code span in a GFM table still ends at an unescaped pipe
            text = text.replace("|", "\\|")
        ticks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
        pad = " " if text.startswith("`") or text.endswith("`") else ""
        # no html.escape: markdown shows a code span literally (`<` stays text there)
        return f"{ticks}{pad}{text}{pad}{ticks}"
    return part.replace("|", "\\|") if in_table else part


def _md_text(text: Text, in_table: bool = False) -> str:
    parts = (text,) if isinstance(text, str) else text
    return "".join(_md_inline(p, in_table) for p in parts)


def _html_text(text: Text) -> str:
    parts = (text,) if isinstance(text, str) else text
    out = []
    for part in parts:
        if isinstance(part, Code):
            out.append(f"<code>{html.escape(part.text)}</code>")
        elif isinstance(part, Untrusted):
            out.append(html.escape(part.text))
        else:
            out.append(html.escape(part))
    return "".join(out)


def render_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {_md_text(block.text)}")
        elif isinstance(block, Para):
            out.append(_md_text(block.text))
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {_md_text(item)}" for item in block.items))
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(_md_text(h, True) for h in block.header) + " |"]
            lines.append("|" + "---|" * len(block.header))
            lines += [
                "| " + " | ".join(_md_text(c, True) for c in row) + " |" for row in block.rows
            ]
            out.append("\n".join(lines))
        else:
            out.append(f"![{block.alt}]({block.file})")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #1a1a1a; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
code { background: #f4f4f4; padding: 0 0.2rem; word-break: break-all; }
img { max-width: 100%; border: 1px solid #ddd; }
h1, h2, h3 { margin-top: 1.6rem; }
""".strip()


def render_html(blocks: Sequence[Block], title: str, images: dict[str, bytes]) -> str:
    """A self-contained page: inline CSS, `images` (file name -> PNG bytes) as data URIs."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 6)
            body.append(f"<h{level}>{_html_text(block.text)}</h{level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{_html_text(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_html_text(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_html_text(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_html_text(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode(images[block.file]).decode("ascii")
            body.append(
                f'<p><img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}"></p>'
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
