"""Small charts for the report pages, drawn on the server as inline SVG (no script, no CDN).

Every label is escaped; each bar is a ``<rect class="bar">`` carrying its label and value in
``data-`` attributes and a ``<title>`` tooltip, so tests and screen readers can read the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

_LABEL_W = 220
_BAR_H = 22
_GAP = 8
_PAD = 10
_VALUE_W = 150  # room for "12 · up to 3 d 4 h late"
_CHAR_W = 7.0  # average width of a 12 px system-ui character, for truncating labels
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
        f'<text x="{_PAD}" y="24" fill="#5b6470" font-size="13">No data for this choice.</text></svg>'
    )


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    width: int = 720,
    max_value: float | None = None,
    colour: str = "bar",
    centred: bool = False,
) -> Markup:
    """Horizontal bars, one per row, longest value = full width (or ``max_value``, e.g. 100 for %).

    ``centred`` draws each bar around the middle of the plot: a funnel.
    """
    if not bars:
        return _empty(title, width)
    plot_w = width - _LABEL_W - _VALUE_W - 2 * _PAD
    top = max([max_value or 0.0, *(b.value for b in bars)]) or 1.0
    height = 2 * _PAD + len(bars) * (_BAR_H + _GAP) - _GAP
    fill = _COLOURS.get(colour, _COLOURS["bar"])
    # A chart whose bars link to their drill-down is a group of links, not one picture.
    role = "group" if any(bar.href for bar in bars) else "img"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="{role}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-label="{escape(title)}" '
        'font-family="system-ui, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
    ]
    for index, bar in enumerate(bars):
        y = _PAD + index * (_BAR_H + _GAP)
        w = max(0.0, bar.value) / top * plot_w
        x = _PAD + _LABEL_W + ((plot_w - w) / 2 if centred else 0)
        text = bar.text if bar.text is not None else _num(bar.value)
        label = escape(bar.label)
        rect = (
            f'<rect class="bar" x="{_num(x)}" y="{y}" width="{_num(w)}" height="{_BAR_H}" rx="3" '
            f'fill="{fill}" data-label="{label}" data-value="{escape(_num(bar.value))}">'
            f"<title>{label}: {escape(text)}</title></rect>"
        )
        if bar.href:
            rect = f'<a href="{escape(bar.href)}">{rect}</a>'
        value_x = _PAD + _LABEL_W + (plot_w + w) / 2 + 6 if centred else x + w + 6
        parts += [
            f'<text class="label" x="{_PAD + _LABEL_W - 8}" y="{y + _BAR_H / 2 + 4}" text-anchor="end" '
            f'fill="#1b1f24">{escape(_fit(bar.label, _LABEL_W - 16))}</text>',
            rect,
            f'<text class="value" x="{_num(value_x)}" '
            f'y="{y + _BAR_H / 2 + 4}" fill="#5b6470">{escape(text)}</text>',
        ]
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every label and value above is escaped)
