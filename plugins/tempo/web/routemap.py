"""A process's route map: the steps of a DAG drawn as an SVG, with done, current and pending steps marked.

The map is rendered on the server as one ``<svg>`` string, so a page can inline it without JavaScript,
web fonts or a CDN. Steps are laid out left to right in layers (a step's column is the length of the
longest path to it from a root), and each upstream link is drawn as an arrow. Every piece of text and
every attribute value that comes from a DAG (task ids, labels) is XML-escaped, so a hostile label shows
up as text and never as markup.

State is never shown by colour alone: each state also has a symbol in the box (✓ done, ▶ current,
○ pending, ↷ skipped, ✕ failed) and a line style (a thick border for the current step, a dashed one for
skipped steps), and a legend under the map explains them. Human steps get rounded corners and a small
person glyph.

The SVG keeps its natural size (a page puts it in a box that scrolls sideways), so the labels of a
long route stay as readable as those of a short one.

The output is deterministic (same input, same string) so it can be cached and compared in tests.
"""

from __future__ import annotations

import hashlib
import heapq
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["STATES", "Step", "render_route_map"]

STATES = ("done", "current", "pending", "skipped", "failed")


@dataclass(frozen=True)
class Step:
    task_id: str
    label: str  # shown text (e.g. the step's title or task_id)
    upstream: tuple[str, ...] = ()  # task ids this step depends on
    kind: str = "task"  # "human" for human steps, "task" otherwise


@dataclass(frozen=True)
class _Style:
    fill: str
    stroke: str
    stroke_width: float
    dash: str | None
    mark: str  # the non-colour cue, shown before the state name
    ink: str  # colour of the state line; dark enough to read on the fill


# Colours are chosen to stay apart for the common colour-vision deficiencies, but the marks and the
# line styles carry the same information, so the map still reads in greyscale.
_STYLES: dict[str, _Style] = {
    "done": _Style("#e6f4ea", "#1e8e3e", 1.5, None, "✓", "#137333"),
    "current": _Style("#e8f0fe", "#1a73e8", 3.0, None, "▶", "#174ea6"),
    "pending": _Style("#ffffff", "#9aa0a6", 1.5, None, "○", "#5f6368"),
    "skipped": _Style("#f1f3f4", "#80868b", 1.5, "5 3", "↷", "#5f6368"),
    "failed": _Style("#fce8e6", "#d93025", 2.0, None, "✕", "#a50e0e"),
}

# Geometry, in SVG user units (pixels at 100 % zoom).
_PAD = 20
_BOX_H = 52
_COL_GAP = 52  # room between columns for the edge curves and arrowheads
_ROW_GAP = 20
_BACK_LANE = 44  # extra top margin for edges that point backwards (only ever drawn for cycles)
_MAX_LABEL = 28  # characters; longer labels are cut with an ellipsis, the full text is in <title>
_CHAR_W = 7.4  # average width of a character at 11-13px, for the legend; no font metrics on the server
_MIN_BOX_W = 132
_TEXT_X = 12  # label indent for task steps
_HUMAN_TEXT_X = 30  # human steps make room for the person glyph
_LEGEND_H = 44
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"
_EDGE_COLOUR = "#80868b"
_HIGHLIGHT_COLOUR = "#e37400"
_HIGHLIGHT_GAP = 6  # distance of the highlight outline from its box

# XML 1.0 forbids these code points even when escaped; a DAG could still contain them, and one of
# them would make the whole page's SVG malformed.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _clean(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


def _text(value: str) -> str:
    """Escape character data."""
    return html.escape(_clean(value), quote=True)


def _attr(value: str) -> str:
    """Escape and quote an attribute value.

    Whitespace characters are written as references because an XML parser would otherwise fold
    them to plain spaces, and a ``data-task-id`` should survive a round trip exactly.
    """
    escaped = html.escape(_clean(value), quote=True)
    escaped = escaped.replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")
    return f'"{escaped}"'


def _num(value: float) -> str:
    # A fixed, short format keeps the output byte-for-byte stable and readable.
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _label_width(text: str) -> float:
    """Estimate the width of a bold 13px label, erring wide, since the server cannot measure text.

    The numbers are DejaVu Sans Bold advances (the widest common fallback font), rounded up per class
    of character; narrower system fonts just leave a little more room in the box.
    """
    width = 0.0
    for char in text:
        if ord(char) >= 0x2E80:  # CJK and other full-width scripts
            width += 13.5
        elif char in "ijl.,:;'|/ ":
            width += 4.9
        elif char in "frt()!-":
            width += 6.4
        elif char in "mwMW@%&<>":
            width += 14.3
        elif char.isupper() or char.isdigit():
            width += 11.1
        else:
            width += 9.3
    return width


def _truncate(label: str) -> str:
    flat = " ".join(_clean(label).split())  # newlines and tabs would not render in one <text> line
    if len(flat) <= _MAX_LABEL:
        return flat
    return flat[: _MAX_LABEL - 1].rstrip() + "…"


@dataclass
class _Graph:
    steps: list[Step]  # first occurrence of each task id, input order
    upstream: dict[str, list[str]]  # in-graph links only, de-duplicated, in input order
    column: dict[str, int]
    row: dict[str, int]
    lanes: dict[tuple[str, str, int], int]  # (upstream, downstream, column) -> row of a long edge
    rows: int  # rows in the tallest column, lanes included
    columns: int
    back_edges: bool


def _layout(steps: Sequence[Step]) -> _Graph:
    # A task id that appears twice is drawn once (the first time); Airflow forbids duplicates anyway.
    unique: dict[str, Step] = {}
    for step in steps:
        unique.setdefault(step.task_id, step)
    ordered = list(unique.values())
    index = {step.task_id: i for i, step in enumerate(ordered)}

    # Upstream ids that are not steps of this map (e.g. a hidden helper task) are dropped, and so are
    # self-links, which could never be drawn as a left-to-right arrow.
    upstream: dict[str, list[str]] = {}
    downstream: dict[str, list[str]] = {tid: [] for tid in index}
    for step in ordered:
        ups: list[str] = []
        for up in step.upstream:
            if up in index and up != step.task_id and up not in ups:
                ups.append(up)
                downstream[up].append(step.task_id)
        upstream[step.task_id] = ups

    # Longest path from the roots, by Kahn's topological sort. The heap is keyed on input order so
    # ties break the same way every time. If the queue runs dry while steps are left, they sit on a
    # cycle: the first of them (in input order) is placed anyway, ignoring the links still missing.
    # Each step is placed exactly once, so this always ends.
    waiting = {tid: len(ups) for tid, ups in upstream.items()}
    ready = [(index[tid], tid) for tid, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    column: dict[str, int] = {}
    while len(column) < len(ordered):
        if not ready:
            forced = next(step.task_id for step in ordered if step.task_id not in column)
            heapq.heappush(ready, (index[forced], forced))
        _, tid = heapq.heappop(ready)
        if tid in column:
            continue  # a forced step whose last upstream arrived later
        column[tid] = max((column[up] + 1 for up in upstream[tid] if up in column), default=0)
        for down in downstream[tid]:
            waiting[down] -= 1
            if waiting[down] == 0 and down not in column:
                heapq.heappush(ready, (index[down], down))

    columns = max(column.values(), default=-1) + 1
    filled = [0] * columns
    row: dict[str, int] = {}
    for step in ordered:  # rows within a column follow input order
        row[step.task_id] = filled[column[step.task_id]]
        filled[column[step.task_id]] += 1

    # An edge that skips columns gets an empty lane (a row of its own) in each column it crosses, so
    # it never runs through a box. Lanes go below the boxes of that column.
    lanes: dict[tuple[str, str, int], int] = {}
    back_edges = False
    for step in ordered:
        for up in upstream[step.task_id]:
            start, end = column[up], column[step.task_id]
            if end <= start:
                back_edges = True
            for col in range(start + 1, end):
                lanes[(up, step.task_id, col)] = filled[col]
                filled[col] += 1

    return _Graph(
        steps=ordered,
        upstream=upstream,
        column=column,
        row=row,
        lanes=lanes,
        rows=max(filled, default=0),
        columns=columns,
        back_edges=back_edges,
    )


def _person(x: float, y: float, colour: str) -> str:
    """A small person glyph (head and shoulders) for human steps, drawn with shapes, not a font."""
    return (
        f'<g class="human-glyph" fill="{colour}" aria-hidden="true">'
        f'<circle cx="{_num(x)}" cy="{_num(y - 4)}" r="3.5"/>'
        f'<path d="M {_num(x - 6)} {_num(y + 7)} a 6 5.5 0 0 1 12 0 z"/>'
        "</g>"
    )


def _radius(human: bool, height: float) -> float:
    return min(14, height / 3) if human else 3


def _box_rect(x: float, y: float, w: float, h: float, style: _Style, human: bool, cls: str) -> str:
    dash = f' stroke-dasharray="{style.dash}"' if style.dash else ""
    radius = _radius(human, h)
    return (
        f'<rect class="{cls}" x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
        f'rx="{_num(radius)}" fill="{style.fill}" stroke="{style.stroke}" '
        f'stroke-width="{_num(style.stroke_width)}"{dash}/>'
    )


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    """A horizontal S-curve from one point to the next (a straight line when they are level)."""
    if y1 == y2:
        return f"L {_num(x2)} {_num(y2)}"
    mid = (x1 + x2) / 2
    return f"C {_num(mid)} {_num(y1)} {_num(mid)} {_num(y2)} {_num(x2)} {_num(y2)}"


def _empty_svg() -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" class="tempo-routemap" role="img" '
        'aria-label="Route map: no steps" width="160" height="48" viewBox="0 0 160 48">'
        f'<text x="80" y="29" text-anchor="middle" font-family={_attr(_FONT)} font-size="13" '
        'fill="#5f6368">No steps</text></svg>'
    )


def render_route_map(
    steps: Sequence[Step], states: Mapping[str, str], *, highlight: str | None = None
) -> str:
    """Return an ``<svg>`` element (a string) drawing ``steps`` as a left-to-right route map.

    ``states`` maps a task id to ``"done"``, ``"current"``, ``"pending"``, ``"skipped"`` or
    ``"failed"``; a step that is missing, or has a state outside that list, is drawn as pending.
    ``highlight`` names one step to draw with an extra outline (e.g. the step the viewer is acting on);
    an id that is not a step is ignored.

    Each step is a ``<g data-task-id=… data-state=…>`` holding its box, its text and a ``<title>``
    with the full label. Upstream ids that are not in ``steps`` are ignored; a cycle (which Airflow
    does not allow) is broken at its first step in input order rather than looping.
    """
    if not steps:
        return _empty_svg()

    graph = _layout(steps)
    # An unknown state is drawn as pending rather than failing the whole page.
    state = {step.task_id: states.get(step.task_id, "pending") for step in graph.steps}
    state = {tid: (st if st in _STYLES else "pending") for tid, st in state.items()}

    # One width for every box keeps the columns straight; it fits the widest (truncated) label.
    longest = max(_label_width(_truncate(step.label)) for step in graph.steps)
    box_w = max(_MIN_BOX_W, round(longest) + _HUMAN_TEXT_X + _TEXT_X)
    top = _PAD + (_BACK_LANE if graph.back_edges else 0)

    def box_x(col: int) -> float:
        return _PAD + col * (box_w + _COL_GAP)

    def row_y(row: int) -> float:
        return top + row * (_BOX_H + _ROW_GAP)

    graph_w = _PAD * 2 + graph.columns * box_w + (graph.columns - 1) * _COL_GAP
    legend_y = row_y(graph.rows) - _ROW_GAP + 16
    legend, legend_w = _legend(legend_y)
    width = max(graph_w, legend_w + _PAD * 2)
    height = legend_y + _LEGEND_H - 16 + _PAD

    # The marker id must be unique on a page that inlines several maps, and stable for a given input.
    digest = hashlib.sha256(
        repr((list(steps), sorted((str(k), str(v)) for k, v in states.items()), highlight)).encode(
            "utf-8", "surrogatepass"
        )
    ).hexdigest()[:12]
    arrow_id = f"tempo-routemap-arrow-{digest}"

    summary = "; ".join(
        f"{' '.join(_clean(step.label).split())}: {state[step.task_id]}"
        + (" (human step)" if step.kind == "human" else "")
        for step in graph.steps
    )
    noun = "step" if len(graph.steps) == 1 else "steps"
    aria = f"Route map, {len(graph.steps)} {noun}. {summary}"

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tempo-routemap" role="img" aria-label={_attr(aria)} '
        f'width="{_num(width)}" height="{_num(height)}" viewBox="0 0 {_num(width)} {_num(height)}" '
        f"font-family={_attr(_FONT)}>",
        "<defs>",
        f'<marker id="{arrow_id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        f'markerUnits="userSpaceOnUse" orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" '
        f'fill="{_EDGE_COLOUR}"/></marker>',
        "</defs>",
        '<g class="edges" fill="none">',
    ]

    # Edges first, so boxes are painted over their ends.
    for step in graph.steps:
        down = step.task_id
        for up in graph.upstream[down]:
            start_col, end_col = graph.column[up], graph.column[down]
            if end_col > start_col:
                x, y = box_x(start_col) + box_w, row_y(graph.row[up]) + _BOX_H / 2
                parts = [f"M {_num(x)} {_num(y)}"]
                for col in range(start_col + 1, end_col):
                    lane_y = row_y(graph.lanes[(up, down, col)]) + _BOX_H / 2
                    parts.append(_curve(x, y, box_x(col), lane_y))
                    x, y = box_x(col) + box_w, lane_y
                    parts.append(f"L {_num(x)} {_num(y)}")
                # Stop short of a highlighted box so its outline does not hide the arrowhead.
                end_x = box_x(end_col) - (_HIGHLIGHT_GAP if down == highlight else 0)
                end_y = row_y(graph.row[down]) + _BOX_H / 2
                parts.append(_curve(x, y, end_x, end_y))
                dash = ""
            else:
                # Only a cycle gets here: arc over the top of the map into the top of the target.
                sx = box_x(start_col) + box_w * 0.65
                tx = box_x(end_col) + box_w * 0.35
                sy = row_y(graph.row[up])
                ty = row_y(graph.row[down]) - (_HIGHLIGHT_GAP if down == highlight else 0)
                peak = _PAD + 4
                parts = [
                    f"M {_num(sx)} {_num(sy)} C {_num(sx)} {_num(peak - 20)} {_num(tx)} {_num(peak - 20)} "
                    f"{_num(tx)} {_num(ty)}"
                ]
                dash = ' stroke-dasharray="4 3"'
            out.append(
                f'<path class="edge" data-from={_attr(up)} data-to={_attr(down)} d="{" ".join(parts)}" '
                f'stroke="{_EDGE_COLOUR}" stroke-width="1.5"{dash} marker-end="url(#{arrow_id})"/>'
            )
    out.append("</g>")

    out.append('<g class="steps">')
    for step in graph.steps:
        tid = step.task_id
        st = state[tid]
        style = _STYLES[st]
        human = step.kind == "human"
        x, y = box_x(graph.column[tid]), row_y(graph.row[tid])
        is_highlight = highlight is not None and tid == highlight
        kind = "human" if human else "task"
        attrs = f"data-task-id={_attr(tid)} data-state={_attr(st)} data-kind={_attr(kind)}"
        if is_highlight:
            attrs += ' data-highlight="true"'
        out.append(f'<g class="step step-{st}" {attrs}>')
        out.append(f"<title>{_text(step.label)}</title>")
        if is_highlight:
            # Drawn outside the box, in a colour no state uses, so it adds to the state cue and never
            # replaces it.
            out.append(
                f'<rect class="highlight" x="{_num(x - _HIGHLIGHT_GAP)}" y="{_num(y - _HIGHLIGHT_GAP)}" '
                f'width="{_num(box_w + 2 * _HIGHLIGHT_GAP)}" height="{_num(_BOX_H + 2 * _HIGHLIGHT_GAP)}" '
                f'rx="{_num(_radius(human, _BOX_H) + _HIGHLIGHT_GAP)}" fill="none" '
                f'stroke="{_HIGHLIGHT_COLOUR}" stroke-width="2.5"/>'
            )
        out.append(_box_rect(x, y, box_w, _BOX_H, style, human, "box"))
        text_x = x + (_HUMAN_TEXT_X if human else _TEXT_X)
        if human:
            out.append(_person(x + 15, y + _BOX_H / 2, style.stroke))
        weight = 700 if st == "current" else 500  # the current step stands out in greyscale too
        out.append(
            f'<text class="label" x="{_num(text_x)}" y="{_num(y + 21)}" font-size="13" '
            f'font-weight="{weight}" fill="#202124">{_text(_truncate(step.label))}</text>'
        )
        out.append(
            f'<text class="state" x="{_num(text_x)}" y="{_num(y + 39)}" font-size="11" '
            f'fill="{style.ink}">{style.mark} {st}</text>'
        )
        out.append("</g>")
    out.append("</g>")
    out.append(legend)
    out.append("</svg>")
    return "\n".join(out)


def _legend(y: float) -> tuple[str, float]:
    """The key under the map: one sample per state and one for human steps; returns (svg, width)."""
    items: list[str] = []
    x: float = _PAD
    for name in STATES:
        style = _STYLES[name]
        label = f"{style.mark} {name}"
        items.append(
            f'<g class="legend-item" data-legend-state="{name}">'
            + _box_rect(x, y + 5, 22, 16, style, False, "swatch")
            + f'<text x="{_num(x + 28)}" y="{_num(y + 17)}" font-size="11" fill="{style.ink}">{label}</text>'
            + "</g>"
        )
        x += 28 + len(label) * _CHAR_W + 18
    pending = _STYLES["pending"]
    items.append(
        '<g class="legend-item" data-legend-kind="human">'
        + _box_rect(x, y + 1, 30, 24, pending, True, "swatch")
        + _person(x + 15, y + 13, "#5f6368")
        + f'<text x="{_num(x + 36)}" y="{_num(y + 17)}" font-size="11" fill="#5f6368">human step</text>'
        + "</g>"
    )
    x += 36 + len("human step") * _CHAR_W
    return '<g class="legend">' + "".join(items) + "</g>", x - _PAD
