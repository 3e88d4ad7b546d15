"""Small charts for the report pages, drawn on the server as inline SVG (no script, no CDN).

Every label is escaped; each bar is a ``<rect class="bar">`` carrying its label and value in
``data-`` attributes and a ``<title>`` tooltip, so tests and screen readers can read the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

#: The natural width: a phone's card (about 340 px) scales the chart down only a little, so its
#: text stays readable; a wide page shows it at this size, beside the table with the same numbers.
_WIDTH = 400
_FONT = 13
_LABEL_H = 18  # the line with the label (left) and the value (right)
_BAR_H = 14
_GAP = 10
_PAD = 10
_CHAR_W = 7.2  # average width of a 13 px system-ui character, erring wide: the server cannot measure
_COLOURS = {"bar": "#2563eb", "funnel": "#0e7490", "bad": "#b42318", "ok": "#067647"}


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    #: What the bar's end says ("12", "66.7 %"); the value itself by default.
    text: str | None = None
    #: A link for the bar (a drill-down); None for none.
    href: str | None = None


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _fit(label: str, width: float) -> str:
    most = max(4, int(width / _CHAR_W))
    return label if len(label) <= most else label[: most - 1] + "…"


def _empty(title: str, width: int) -> Markup:
    return Markup(  # noqa: S704 (the title is escaped)
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart empty" role="img" width="{width}" height="40" '
        f'viewBox="0 0 {width} 40" aria-label="{escape(title)}: no data"><title>{escape(title)}</title>'
        f'<text class="value" x="{_PAD}" y="24" fill="#5b6470" font-size="{_FONT}">'
        "No data for this choice.</text></svg>"
    )


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    width: int = _WIDTH,
    max_value: float | None = None,
    colour: str = "bar",
    centred: bool = False,
) -> Markup:
    """Horizontal bars, one per row, longest value = full width (or ``max_value``, e.g. 100 for %).

    Each row is a line with the label on the left and the value on the right, the bar under it
    across the whole width: neither is ever cut by the other. A label too long for its line is
    shortened with an ellipsis and keeps its full text in a ``<title>`` (the tooltip).
    ``centred`` draws each bar around the middle of the plot: a funnel.
    """
    if not bars:
        return _empty(title, width)
    plot_w = width - 2 * _PAD
    row_h = _LABEL_H + _BAR_H + _GAP
    top = max([max_value or 0.0, *(b.value for b in bars)]) or 1.0
    height = 2 * _PAD + len(bars) * row_h - _GAP
    fill = _COLOURS.get(colour, _COLOURS["bar"])
    # A chart whose bars link to their drill-down is a group of links, not one picture.
    role = "group" if any(bar.href for bar in bars) else "img"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="{role}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-label="{escape(title)}" '
        f'font-family="system-ui, sans-serif" font-size="{_FONT}">',
        f"<title>{escape(title)}</title>",
    ]
    for index, bar in enumerate(bars):
        y = _PAD + index * row_h
        text = bar.text if bar.text is not None else _num(bar.value)
        shown = _fit(bar.label, plot_w - (len(text) + 2) * _CHAR_W)
        tooltip = f"<title>{escape(bar.label)}</title>" if shown != bar.label else ""
        bar_y = y + _LABEL_H
        w = max(0.0, bar.value) / top * plot_w
        x = _PAD + ((plot_w - w) / 2 if centred else 0)
        label = escape(bar.label)
        rect = (
            f'<rect class="bar" x="{_num(x)}" y="{bar_y}" width="{_num(w)}" height="{_BAR_H}" rx="3" '
            f'fill="{fill}" data-label="{label}" data-value="{escape(_num(bar.value))}">'
            f"<title>{label}: {escape(text)}</title></rect>"
        )
        if bar.href:
            rect = f'<a href="{escape(bar.href)}">{rect}</a>'
        parts += [
            f'<text class="label" x="{_PAD}" y="{y + _FONT}" fill="#1b1f24">{tooltip}{escape(shown)}</text>',
            f'<text class="value" x="{width - _PAD}" y="{y + _FONT}" text-anchor="end" '
            f'fill="#5b6470">{escape(text)}</text>',
            rect,
        ]
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every label and value above is escaped)
