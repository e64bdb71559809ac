"""The page: HTML rendered from the service's rows (Jinja2, autoescaped: every string that
came from a bundle is escaped), for the server and for `export-site` alike.

`Links` makes the same templates link `/submissions/3` when served and
`submissions/3.html` (relative) when exported as static files.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
ARM_ORDER = ("base", "teacher", "control-teacher", "student", "control-student", "student-base")


@dataclass(frozen=True)
class Links:
    static: bool = False
    prefix: str = "/"
    """Served: "/"; static: the relative path back to the site's root ("", "../", ...)."""

    def index(self) -> str:
        return self.prefix + ("index.html" if self.static else "")

    def detail(self, sub_id: int) -> str:
        return self.prefix + (
            f"submissions/{sub_id}.html" if self.static else f"submissions/{sub_id}"
        )

    def episode(self, sub_id: int, stage: str, index: int) -> str:
        tail = f"submissions/{sub_id}/{stage}/{index}"
        return self.prefix + (tail + ".html" if self.static else tail)


def pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * float(value):.1f}%"


def num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


_ENV.filters["pct"] = pct
_ENV.filters["num"] = num


def rates_svg(cell: dict[str, Any], metric: str) -> str:
    """A bar chart of every arm's rate on `metric` with its Wilson interval (inline SVG)."""
    arms = [a for a in ARM_ORDER if a in cell.get("arms", {})]
    width, height, left, bar = 84 * len(arms) + 50, 180, 40, 34
    parts = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height + 40}" role="img" aria-label="{html.escape(metric)} by arm">',
        f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#444"/>',
        f'<text x="2" y="12" font-size="10">100%</text>'
        f'<text x="2" y="{height}" font-size="10">0%</text>',
    ]
    for i, arm in enumerate(arms):
        rate = cell["arms"][arm]["metrics"]["rates"].get(metric) or {}
        x = left + 10 + 84 * i
        value = rate.get("value")
        if value is not None:
            top = height - value * (height - 10)
            parts.append(
                f'<rect x="{x}" y="{top:.1f}" width="{bar}" height="{height - top:.1f}" '
                f'fill="#4a78b5"><title>{html.escape(arm)}: {pct(value)} (n={rate.get("n")})'
                "</title></rect>"
            )
            low, high = rate.get("low"), rate.get("high")
            if low is not None and high is not None:
                y1, y2 = height - low * (height - 10), height - high * (height - 10)
                cx = x + bar / 2
                parts.append(f'<line x1="{cx}" y1="{y1:.1f}" x2="{cx}" y2="{y2:.1f}" '
                             'stroke="#000" stroke-width="1.5"/>')  # fmt: skip
        parts.append(
            f'<text x="{x}" y="{height + 14}" font-size="9">{html.escape(arm)}</text>'
            f'<text x="{x}" y="{height + 26}" font-size="9">{pct(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_index(rows: list[dict[str, Any]], links: Links, title: str = "agentbench") -> str:
    tracks = sorted({r["track"] for r in rows})
    traits = sorted({r["trait"] for r in rows})
    return _ENV.get_template("index.html").render(
        rows=rows, links=links, tracks=tracks, traits=traits, title=title
    )


def render_detail(detail: dict[str, Any], links: Links) -> str:
    from markupsafe import Markup

    results = detail["results"]
    plots = [
        {"cell": c["cell_id"], "metric": c["metric"], "svg": Markup(rates_svg(c, c["metric"]))}
        for c in results.get("cells", [])
    ]
    meta_text = json.dumps(detail["metadata"], indent=2)
    return _ENV.get_template("detail.html").render(
        d=detail, s=detail["status"], plots=plots, links=links, meta_text=meta_text,
        stages=detail["stages"],
    )  # fmt: skip


def render_episode(
    sub_id: int, stage: str, index: int, episode: dict[str, Any], links: Links
) -> str:
    steps = []
    for step in episode.get("steps", []):
        steps.append({**step, "intent": _pretty(step.get("intent_json")),
                      "effect": _pretty(step.get("effect_json"))})  # fmt: skip
    return _ENV.get_template("episode.html").render(
        e=episode, steps=steps, sub_id=sub_id, stage=stage, index=index, links=links,
        outcome=episode.get("outcome", {}),
    )  # fmt: skip


def _pretty(text: Any) -> str:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return str(text)
    return "" if value in ({}, None) else json.dumps(value, sort_keys=True)
