"""Server-rendered SVG charts: bar, stacked bar, line, histogram. No JavaScript, no external assets.

Each chart is one ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that states the data in
words (screen readers read it; so does anyone hovering, through the per-mark ``<title>`` tooltips),
axes with labelled ticks, a legend where there is more than one series, and an empty state that
says what will appear there. Colours come from classes styled in ``static/dashboard.css`` (no
inline styles: CSP-safe). Every piece of text is escaped; the result is ``Markup`` for Jinja.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date
from html import escape

from markupsafe import Markup

__all__ = ["hbar", "stacked", "line", "histogram", "nice_ticks", "percent", "seconds"]

WIDTH = 640
FONT = 12


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.0f} s" if value >= 10 or value == int(value) else f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """0 and round steps up to at least ``top`` (1, 2, 2.5, 5 × 10^k)."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _num(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{int(value)}"


def _svg(chart_id: str, title: str, desc: str, height: int, body: list[str], css: str = "", width: int = WIDTH) -> Markup:
    t, d = escape(title), escape(desc)
    return Markup(  # noqa: S704 - every interpolated text is escaped above or by the callers' _t()
        f'<svg class="chart {css}" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" preserveAspectRatio="xMinYMin meet" '
        f'data-testid="chart-{escape(chart_id)}">'
        f'<title id="{escape(chart_id)}-t">{t}</title><desc id="{escape(chart_id)}-d">{d}</desc>'
        + "".join(body) + "</svg>")


def _t(x: float, y: float, text: str, cls: str = "", anchor: str = "start") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}">{escape(text)}</text>')


def _empty(chart_id: str, title: str, message: str, height: int = 140, width: int = WIDTH) -> Markup:
    body = [f'<rect x="1" y="1" width="{width - 2}" height="{height - 2}" rx="8" class="chart-empty-frame"/>',
            _t(width / 2, height / 2 - 4, "No data yet", "chart-empty-title", "middle"),
            _t(width / 2, height / 2 + 16, message, "chart-empty-text", "middle")]
    return _svg(chart_id, title, f"No data yet. {message}", height, body, "chart-empty", width)


def _clip(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------


def hbar(chart_id: str, title: str, items: Sequence[tuple[str, float | None, str]], *, top: float | None = None,
         fmt: Callable[[float], str] = _num, axis_label: str = "", empty: str = "", width: int = WIDTH) -> Markup:
    """Horizontal bars, one per item ``(label, value or None, note)``; ``top`` fixes the scale (1.0
    for shares). A None value shows "no data" instead of a bar."""
    if not items:
        return _empty(chart_id, title, empty or "Figures appear here once there is work to measure.", width=width)
    left, right, row, head = 190, 70, 30, 8
    values = [v for _, v, _ in items if v is not None]
    ticks = nice_ticks(top if top is not None else max(values or [1.0]))
    scale_top = ticks[-1] or 1.0
    plot_w = width - left - right
    height = head + row * len(items) + 40
    body: list[str] = []
    axis_y = head + row * len(items)
    for tick in ticks:
        x = left + plot_w * tick / scale_top
        body.append(f'<line x1="{x:.1f}" y1="{head}" x2="{x:.1f}" y2="{axis_y}" class="grid"/>')
        body.append(_t(x, axis_y + 16, fmt(tick), "tick", "middle"))
    body.append(f'<line x1="{left}" y1="{head}" x2="{left}" y2="{axis_y}" class="axis"/>')
    body.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" class="axis"/>')
    if axis_label:
        body.append(_t(left + plot_w / 2, axis_y + 34, axis_label, "axis-label", "middle"))
    parts = []
    for n, (label, value, note) in enumerate(items):
        y = head + n * row
        body.append(_t(left - 8, y + row / 2 + 4, _clip(label, 28), "cat", "end"))
        if value is None:
            body.append(_t(left + 6, y + row / 2 + 4, "no data", "muted-text"))
            parts.append(f"{label}: no data")
            continue
        w = max(1.5, plot_w * min(value, scale_top) / scale_top)
        text = fmt(value) + (f" ({note})" if note else "")
        body.append(f'<rect x="{left}" y="{y + 6}" width="{w:.1f}" height="{row - 12}" rx="3" class="bar c0">'
                    f'<title>{escape(label)}: {escape(text)}</title></rect>')
        body.append(_t(left + w + 6, y + row / 2 + 4, fmt(value), "val"))
        parts.append(f"{label}: {text}")
    return _svg(chart_id, title, "; ".join(parts), height, body, width=width)


def stacked(chart_id: str, title: str, segments: Sequence[tuple[str, str, int]], *, unit: str = "tasks",
            empty: str = "", width: int = WIDTH) -> Markup:
    """One 100% bar split into ``(key, label, count)`` segments, with a legend of counts and shares.
    ``key`` names the colour class (``s-<key>``)."""
    total = sum(c for _, _, c in segments)
    if total == 0:
        return _empty(chart_id, title, empty or f"No {unit} yet.", width=width)
    left, bar_y, bar_h = 8, 10, 34
    plot_w = width - 16
    body: list[str] = []
    x = float(left)
    for key, label, count in segments:
        if not count:
            continue
        w = plot_w * count / total
        body.append(f'<rect x="{x:.1f}" y="{bar_y}" width="{w:.1f}" height="{bar_h}" class="seg s-{escape(key)}">'
                    f'<title>{escape(label)}: {count} {escape(unit)} ({count / total:.0%})</title></rect>')
        if w > 44:
            body.append(_t(x + w / 2, bar_y + bar_h / 2 + 4, f"{count / total:.0%}", "seg-label", "middle"))
        x += w
    body.append(f'<rect x="{left}" y="{bar_y}" width="{plot_w}" height="{bar_h}" rx="4" class="seg-frame"/>')
    # legend: up to 3 per line
    ly = bar_y + bar_h + 26
    col_w = plot_w / 3
    for n, (key, label, count) in enumerate(segments):
        lx = left + (n % 3) * col_w
        yy = ly + (n // 3) * 22
        body.append(f'<rect x="{lx:.1f}" y="{yy - 10}" width="12" height="12" rx="2" class="seg s-{escape(key)}"/>')
        body.append(_t(lx + 18, yy, f"{label}: {count:,} ({count / total:.0%})", "legend"))
    height = ly + ((len(segments) - 1) // 3) * 22 + 12
    desc = f"{total:,} {unit}: " + ", ".join(f"{label} {count:,}" for _, label, count in segments)
    return _svg(chart_id, title, desc, height, body, width=width)


def line(chart_id: str, title: str, axis: Sequence[date], series: Sequence[tuple[str, Sequence[int]]], *,
         y_label: str = "", empty: str = "", width: int = WIDTH) -> Markup:
    """One line per series over the days of ``axis``, with points, y gridlines and a legend."""
    if not axis or not series or not any(any(v for v in values) for _, values in series):
        return _empty(chart_id, title, empty or "Nothing in this period yet.", width=width)
    left, right, top_pad, plot_h = 52, 16, 12, 180
    plot_w = width - left - right
    top = max(max(values) for _, values in series)
    ticks = nice_ticks(top, 4)
    scale_top = ticks[-1] or 1.0
    axis_y = top_pad + plot_h
    step = plot_w / max(1, len(axis) - 1)
    body: list[str] = []
    for tick in ticks:
        y = axis_y - plot_h * tick / scale_top
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>')
        body.append(_t(left - 8, y + 4, _num(tick), "tick", "end"))
    body.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" class="axis"/>')
    body.append(f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{axis_y}" class="axis"/>')
    every = max(1, math.ceil(len(axis) / 6))
    for n, day in enumerate(axis):
        if n % every == 0 or n == len(axis) - 1:
            x = left + n * step
            body.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" class="axis"/>')
            body.append(_t(x, axis_y + 18, day.strftime("%b %d").replace(" 0", " "), "tick", "middle"))
    if y_label:
        body.append(f'<text x="14" y="{top_pad + plot_h / 2:.1f}" class="axis-label" text-anchor="middle" '
                    f'transform="rotate(-90 14 {top_pad + plot_h / 2:.1f})">{escape(y_label)}</text>')
    parts = []
    for s, (label, values) in enumerate(series):
        cls = f"c{s % 8}"
        points = [(left + n * step, axis_y - plot_h * v / scale_top) for n, v in enumerate(values)]
        body.append(f'<polyline class="line {cls}" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in points)}"/>')
        for (x, y), v, day in zip(points, values, axis, strict=True):
            if v:
                body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="dot {cls}"><title>{escape(label)}, '
                            f'{day.isoformat()}: {v}</title></circle>')
        parts.append(f"{label}: {sum(values)} in {len(axis)} days, most {max(values)} on one day")
    # legend
    ly, lx = axis_y + 40, float(left)
    for s, (label, _values) in enumerate(series):
        text = _clip(label, 30)
        item_w = 26 + 7 * len(text)
        if lx + item_w > width - right:
            lx, ly = float(left), ly + 20
        body.append(f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 16:.1f}" y2="{ly - 4}" class="line c{s % 8}"/>')
        body.append(_t(lx + 21, ly, text, "legend"))
        lx += item_w + 14
    return _svg(chart_id, title, "; ".join(parts), int(ly + 10), body, width=width)


def histogram(chart_id: str, title: str, bins: Sequence[tuple[float, float, int]], *, x_label: str = "",
              y_label: str = "", fmt: Callable[[float], str] = _num, empty: str = "", width: int = WIDTH) -> Markup:
    """Vertical bars over consecutive ``(from, to, count)`` bins, with both axes labelled."""
    if not bins or not any(c for _, _, c in bins):
        return _empty(chart_id, title, empty or "Nothing to show yet.", width=width)
    left, right, top_pad, plot_h = 52, 16, 12, 170
    plot_w = width - left - right
    ticks = nice_ticks(max(c for _, _, c in bins), 4)
    scale_top = ticks[-1] or 1.0
    axis_y = top_pad + plot_h
    bw = plot_w / len(bins)
    body: list[str] = []
    for tick in ticks:
        y = axis_y - plot_h * tick / scale_top
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>')
        body.append(_t(left - 8, y + 4, _num(tick), "tick", "end"))
    parts = []
    for n, (lo, hi, count) in enumerate(bins):
        x = left + n * bw
        h = plot_h * count / scale_top
        if count:
            body.append(f'<rect x="{x + 3:.1f}" y="{axis_y - h:.1f}" width="{bw - 6:.1f}" height="{h:.1f}" rx="2" '
                        f'class="bar c0"><title>{fmt(lo)}–{fmt(hi)}: {count}</title></rect>')
            body.append(_t(x + bw / 2, axis_y - h - 5, str(count), "val", "middle"))
        body.append(_t(x, axis_y + 18, fmt(lo), "tick", "middle"))
        parts.append(f"{fmt(lo)} to {fmt(hi)}: {count}")
    body.append(_t(left + plot_w, axis_y + 18, fmt(bins[-1][1]), "tick", "middle"))
    body.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" class="axis"/>')
    body.append(f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{axis_y}" class="axis"/>')
    if x_label:
        body.append(_t(left + plot_w / 2, axis_y + 38, x_label, "axis-label", "middle"))
    if y_label:
        body.append(f'<text x="14" y="{top_pad + plot_h / 2:.1f}" class="axis-label" text-anchor="middle" '
                    f'transform="rotate(-90 14 {top_pad + plot_h / 2:.1f})">{escape(y_label)}</text>')
    return _svg(chart_id, title, "; ".join(parts), axis_y + 48, body, width=width)
