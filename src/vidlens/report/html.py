"""A single self-contained HTML page that links a run's outputs (images inline by relative path)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ReportSection:
    title: str
    text: str = ""
    table: list[dict[str, Any]] = field(default_factory=list)  # rows of one flat dict each
    images: list[str] = field(default_factory=list)  # paths relative to the report
    links: list[str] = field(default_factory=list)  # paths relative to the report


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    heads = list(rows[0])
    out = ["<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in heads) + "</tr>"]
    for row in rows:
        cells = []
        for h in heads:
            value = row.get(h, "")
            cells.append(f"<td>{value:.4f}</td>" if isinstance(value, float) else f"<td>{html.escape(str(value))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def write_html_report(path: str | Path, title: str, sections: list[ReportSection]) -> Path:
    """Write `path` (an index.html beside the files it links)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
        "img{max-width:100%;border:1px solid #eee;margin:.5em 0}h2{border-bottom:1px solid #ddd}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        parts.append(_table(section.table))
        for image in section.images:
            parts.append(f"<img src='{html.escape(image)}' alt='{html.escape(image)}'>")
        if section.links:
            parts.append("<ul>" + "".join(f"<li><a href='{html.escape(link)}'>{html.escape(link)}</a></li>" for link in section.links) + "</ul>")
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path
