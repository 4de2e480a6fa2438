"""Server-rendered SVG bar charts (no chart library, no JS): the statistics page's plots.
Every label goes through markupsafe.escape; sizes in CSS pixels."""
from __future__ import annotations

from markupsafe import Markup, escape

COLOURS = {"elevated": "#ff4d4f", "normal": "#3ecf6e", "indeterminate": "#ffb020", "default": "#4da3ff",
           "confirmed": "#ff4d4f", "not confirmed": "#3ecf6e", "open": "#9aa3ad", "other outcome": "#c77dff"}
_FONT = 'font-family="system-ui, sans-serif" font-size="11" fill="#9aa3ad"'  # axis labels, legend
_TITLE = 'font-family="system-ui, sans-serif" font-size="13" fill="#e6e8eb"'
_VALUE = 'font-family="system-ui, sans-serif" font-size="11" fill="#e6e8eb"'  # values on bars


_TITLE_CHAR_PX = 7.4  # a generous average advance of the 13 px title font (system-ui), px per character


def _fit_title(width: int, title_x: int, title: str) -> int:
    """``width`` widened so the title, drawn from ``title_x``, is never cut at the svg's edge
    (a narrow chart had cut 'confirmation rate (PPV) per station, % (last 24 h)')."""
    return max(width, title_x + int(len(title) * _TITLE_CHAR_PX + 0.5) + 8)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    for m in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000):
        if v <= m:
            return float(m)
    return float(v)


def bars(labels: list[str], values: list[float], *, title: str, width: int = 640, height: int = 200,
         colours: list[str] | None = None, label_every: int = 1, value_fmt: str = "{:g}") -> Markup:
    """Vertical bars, one per label; y axis from 0 to a round maximum; empty data says so."""
    left, bottom, top = 36, 22, 36  # top: room for the title above the highest value label
    width = _fit_title(width, left, title)
    plot_w, plot_h = width - left - 8, height - bottom - top
    vmax = _nice_max(max(values, default=0))
    n = max(len(values), 1)
    bw = plot_w / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
             f'<title>{escape(title)}</title>',
             f'<text x="{left}" y="14" {_TITLE}>{escape(title)}</text>']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#333a46"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{value_fmt.format(vmax * frac)}</text>')
    for i, (label, v) in enumerate(zip(labels, values)):
        h = plot_h * (v / vmax) if vmax else 0
        x = left + i * bw
        colour = (colours[i] if colours else None) or COLOURS["default"]
        parts.append(f'<rect x="{x + bw * 0.12:.1f}" y="{top + plot_h - h:.1f}" width="{bw * 0.76:.1f}" '
                     f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}: {value_fmt.format(v)}</title></rect>')
        if v and n <= 24:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{top + plot_h - h - 3:.1f}" text-anchor="middle" '
                         f'{_VALUE}>{value_fmt.format(v)}</text>')
        if i % label_every == 0:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - 6}" text-anchor="middle" {_FONT}>'
                         f'{escape(label)}</text>')
    if not any(values):
        parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" text-anchor="middle" {_FONT}>'
                     'no data yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def grouped(groups: dict[str, dict[str, float]], *, title: str, width: int = 640, row_h: int = 22,
            value_fmt: str = "{:g}") -> Markup:
    """Horizontal stacked bars: one row per group (e.g. station), segments per key (e.g. reason)."""
    keys = sorted({k for g in groups.values() for k in g})
    palette = ["#ffb020", "#4da3ff", "#c77dff", "#3ecf6e", "#ff7a45", "#9aa3ad", "#36cfc9", "#f759ab"]
    colour = {k: COLOURS.get(k) or palette[i % len(palette)] for i, k in enumerate(keys)}
    left, top = 120, 28
    width = _fit_title(width, 0, title)
    legend_h = 18 * ((len(keys) + 3) // 4)
    height = top + row_h * max(len(groups), 1) + legend_h + 12
    plot_w = width - left - 40
    vmax = _nice_max(max((sum(g.values()) for g in groups.values()), default=0))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">', f'<title>{escape(title)}</title>',
             f'<text x="0" y="14" {_TITLE}>{escape(title)}</text>']
    for r, (name, g) in enumerate(sorted(groups.items())):
        y = top + r * row_h
        parts.append(f'<text x="{left - 6}" y="{y + row_h * 0.65:.1f}" text-anchor="end" {_FONT}>{escape(name)}</text>')
        x = float(left)
        for k in keys:
            v = g.get(k, 0)
            if not v:
                continue
            w = plot_w * v / vmax
            parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{colour[k]}">'
                         f'<title>{escape(name)} {escape(k)}: {value_fmt.format(v)}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + row_h * 0.65:.1f}" {_FONT}>{value_fmt.format(sum(g.values()))}</text>')
    if not groups:
        parts.append(f'<text x="{left}" y="{top + 14}" {_FONT}>no data yet</text>')
    ly = top + row_h * max(len(groups), 1) + 8
    for i, k in enumerate(keys):
        x, y = (i % 4) * (width // 4), ly + (i // 4) * 18
        parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour[k]}"/>'
                     f'<text x="{x + 14}" y="{y + 9}" {_FONT}>{escape(k)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
