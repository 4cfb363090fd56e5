"""Two small SVG bar charts drawn here rather than with a plotting library: the report stays one
self-contained file with no scripts, and every label is escaped text, never markup from the data."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH = 720
HEIGHT = 260
LEFT = 48
BOTTOM = 40
TOP = 16


def bar_chart(ident: str, title: str, description: str, labels: Sequence[str], values: Sequence[int]) -> str:
    """An accessible SVG image (role=img, <title> and <desc>) with one bar per value and the max on the axis."""
    plot_w = WIDTH - LEFT - 8
    plot_h = HEIGHT - TOP - BOTTOM
    peak = max(values, default=0) or 1
    slot = plot_w / max(len(values), 1)
    every = max(1, len(labels) // 16)  # at most ~16 axis labels, so a month of days stays readable
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'aria-labelledby="{ident}-title {ident}-desc" class="chart">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" stroke="#444"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#444"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = plot_h * value / peak
        x = LEFT + index * slot + slot * 0.1
        y = TOP + plot_h - height
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{height:.1f}" fill="#2f6690">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
        if index % every == 0:
            parts.append(
                f'<text x="{x + slot * 0.4:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle" '
                f'font-size="10">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
