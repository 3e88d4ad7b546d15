from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import pytest

from tempo.web.routemap import STATES, Step, render_route_map

SVG = "{http://www.w3.org/2000/svg}"

RMA = [
    Step("check_warranty", "Check warranty"),
    Step("create_sales_order", "Create sales order", ("check_warranty",), kind="human"),
    Step("record_so_number", "Record SO number", ("create_sales_order",)),
    Step("tell_requester", "Tell requester", ("record_so_number",)),
    Step("repair_can_start", "Repair can start", ("tell_requester", "check_warranty")),
]
DIAMOND = [
    Step("start", "Start"),
    Step("left", "Left", ("start",)),
    Step("right", "Right", ("start",)),
    Step("join", "Join", ("left", "right")),
]
CHAIN = [Step("a", "A"), Step("b", "B", ("a",)), Step("c", "C", ("b",))]
# Upstream ids listed twice, an id that is not a step, and steps given before their upstream.
MESSY = [
    Step("late", "Late", ("early", "early", "not_a_step")),
    Step("early", "Early"),
    Step("other", "Other", ("ghost",)),
]

# (steps, number of distinct in-graph upstream links), worked out by hand.
GRAPHS = {
    "single": ([Step("only", "Only")], 0),
    "chain": (CHAIN, 2),
    "diamond": (DIAMOND, 4),
    "rma": (RMA, 5),
    "messy": (MESSY, 1),
}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == f"{SVG}svg"
    return root


def step_groups(root: ET.Element) -> dict[str, ET.Element]:
    groups = [g for g in root.iter(f"{SVG}g") if g.get("data-task-id") is not None]
    found = {g.get("data-task-id", ""): g for g in groups}
    assert len(found) == len(groups), "a task id is drawn twice"
    return found


def box(group: ET.Element) -> tuple[float, float, float, float]:
    rects = [r for r in group.iter(f"{SVG}rect") if r.get("class") == "box"]
    assert len(rects) == 1
    r = rects[0]
    return float(r.get("x", "")), float(r.get("y", "")), float(r.get("width", "")), float(r.get("height", ""))


def edges(root: ET.Element) -> list[ET.Element]:
    return [p for p in root.iter(f"{SVG}path") if "edge" in p.get("class", "").split()]


def texts(group: ET.Element, cls: str) -> list[str]:
    return ["".join(t.itertext()) for t in group.iter(f"{SVG}text") if t.get("class") == cls]


def render(steps: list[Step], states: dict[str, str] | None = None, **kwargs: str | None) -> ET.Element:
    return parse(render_route_map(steps, states or {}, **kwargs))


@pytest.mark.parametrize("state", STATES, ids=STATES)
def test_each_step_is_one_group_with_its_state(state):
    root = render(RMA, {"create_sales_order": state})
    groups = step_groups(root)
    assert list(groups) == [s.task_id for s in RMA]
    assert groups["create_sales_order"].get("data-state") == state
    # The state is spelled out in the box, not only coloured.
    assert texts(groups["create_sales_order"], "state")[0].endswith(f" {state}")


def test_states_differ_in_colour_and_in_a_non_colour_cue():
    steps = [Step(s, s) for s in STATES]
    groups = step_groups(render(steps, {s: s for s in STATES}))
    colours, cues = set(), set()
    for state in STATES:
        rect = next(r for r in groups[state].iter(f"{SVG}rect") if r.get("class") == "box")
        colours.add((rect.get("fill"), rect.get("stroke")))
        mark = texts(groups[state], "state")[0].split()[0]
        cues.add((mark, rect.get("stroke-width"), rect.get("stroke-dasharray")))
    assert len(colours) == len(STATES)
    assert len(cues) == len(STATES)
    current = next(r for r in groups["current"].iter(f"{SVG}rect") if r.get("class") == "box")
    pending = next(r for r in groups["pending"].iter(f"{SVG}rect") if r.get("class") == "box")
    assert float(current.get("stroke-width", "0")) > float(pending.get("stroke-width", "0"))
    skipped = next(r for r in groups["skipped"].iter(f"{SVG}rect") if r.get("class") == "box")
    assert skipped.get("stroke-dasharray")
    assert texts(groups["done"], "state") == ["✓ done"]
    assert texts(groups["failed"], "state") == ["✕ failed"]


@pytest.mark.parametrize(
    "states",
    [{}, {"check_warranty": "done"}, {"record_so_number": "running"}, {"record_so_number": ""}],
    ids=["no-states", "other-steps-only", "unknown-state", "empty-state"],
)
def test_missing_or_unknown_state_is_pending(states):
    groups = step_groups(render(RMA, states))
    assert groups["record_so_number"].get("data-state") == "pending"
    assert groups["tell_requester"].get("data-state") == "pending"


@pytest.mark.parametrize(("steps", "expected"), GRAPHS.values(), ids=GRAPHS.keys())
def test_one_edge_per_in_graph_upstream_link(steps, expected):
    root = render(steps)
    drawn = [(e.get("data-from"), e.get("data-to")) for e in edges(root)]
    assert len(drawn) == expected
    assert len(set(drawn)) == expected
    ids = {s.task_id for s in steps}
    assert all(up in ids and down in ids for up, down in drawn)


@pytest.mark.parametrize(("steps", "expected"), GRAPHS.values(), ids=GRAPHS.keys())
def test_columns_increase_along_edges(steps, expected):
    root = render(steps)
    groups = step_groups(root)
    for edge in edges(root):
        up_x = box(groups[edge.get("data-from", "")])[0]
        down_x = box(groups[edge.get("data-to", "")])[0]
        assert down_x > up_x, (edge.get("data-from"), edge.get("data-to"))


def test_column_is_the_longest_path_from_a_root():
    groups = step_groups(render(RMA))
    xs = [box(groups[s.task_id])[0] for s in RMA]
    # repair_can_start also hangs off check_warranty directly, but its longest path puts it last.
    assert xs == sorted(xs)
    assert len(set(xs)) == len(RMA)


def test_diamond_fans_out_and_back_in():
    root = render(DIAMOND, {"start": "done", "left": "done", "right": "current"})
    groups = step_groups(root)
    start, left, right, join = (box(groups[t]) for t in ("start", "left", "right", "join"))
    assert left[0] == right[0]  # the two branches share a column
    assert start[0] < left[0] < join[0]
    assert left[1] < right[1]  # rows follow input order
    assert left[1] + left[3] <= right[1]  # and do not overlap
    into_join = sorted(e.get("data-from", "") for e in edges(root) if e.get("data-to") == "join")
    out_of_start = sorted(e.get("data-to", "") for e in edges(root) if e.get("data-from") == "start")
    assert into_join == ["left", "right"]
    assert out_of_start == ["left", "right"]


def _points(d: str) -> list[tuple[float, float]]:
    """The points of a path's ``d``, plus the midpoint between each pair of neighbours.

    The midpoints catch a straight stretch that enters a box on one side and leaves on the other.
    """
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", d)]
    points = list(zip(numbers[::2], numbers[1::2], strict=True))
    middles = [((x1 + x2) / 2, (y1 + y2) / 2) for (x1, y1), (x2, y2) in itertools.pairwise(points)]
    return points + middles


@pytest.mark.parametrize(("steps", "expected"), GRAPHS.values(), ids=GRAPHS.keys())
def test_edges_do_not_run_through_boxes(steps, expected):
    # The path points (ends, lane waypoints, curve handles and the middles between them) of every edge
    # stay outside every box:
    # the RMA's check_warranty -> repair_can_start link has to go round three boxes.
    root = render(steps)
    boxes = [box(g) for g in step_groups(root).values()]
    for edge in edges(root):
        for px, py in _points(edge.get("d", "")):
            for x, y, w, h in boxes:
                assert not (x < px < x + w and y < py < y + h), (edge.get("data-from"), edge.get("data-to"))


def test_arrowheads_use_a_marker_defined_in_the_svg():
    root = render(RMA)
    markers = {m.get("id") for m in root.iter(f"{SVG}marker")}
    assert len(markers) == 1
    for edge in edges(root):
        assert edge.get("marker-end") == f"url(#{next(iter(markers))})"


HOSTILE = [
    "<script>alert(1)</script>",
    '" onmouseover="x',
    "' onload='x",
    "a & b < c > d",
    "]]><x/>",
    "<!--",
    "&amp; &lt;not-an-entity&gt;",
]


@pytest.mark.parametrize(
    "label",
    HOSTILE,
    ids=["script", "dquote-attr", "squote-attr", "amp-lt-gt", "cdata-end", "comment", "entities"],
)
def test_hostile_labels_are_only_text(label):
    steps = [Step("safe", label), Step(label, label, ("safe",))]  # in the task id as well
    svg = render_route_map(steps, {label: "current"}, highlight=label)
    assert "<script" not in svg
    assert "<x/>" not in svg
    root = parse(svg)
    for element in root.iter():
        assert not any(name.lower().startswith("on") for name in element.attrib)
    groups = step_groups(root)
    assert set(groups) == {"safe", label}
    hostile = groups[label]
    assert hostile.get("data-state") == "current"
    assert hostile.get("data-highlight") == "true"
    assert hostile.findtext(f"{SVG}title") == label
    assert texts(hostile, "label") == [label]
    assert groups["safe"].findtext(f"{SVG}title") == label
    [edge] = edges(root)
    assert (edge.get("data-from"), edge.get("data-to")) == ("safe", label)
    assert label in root.get("aria-label", "")


def test_whitespace_in_a_task_id_survives_the_round_trip():
    groups = step_groups(render([Step("a\tb\nc", "x")]))
    assert list(groups) == ["a\tb\nc"]


def test_characters_xml_cannot_carry_do_not_break_the_document():
    root = render([Step("bad\x00id", "nul\x00 esc\x1b bell\x07 \ud800")])
    [group] = step_groups(root).values()
    assert "nul" in group.findtext(f"{SVG}title", "")


def test_long_label_is_truncated_with_the_full_text_on_hover():
    label = "Ask the regional warehouse manager to confirm the replacement part is in stock"
    [group] = step_groups(render([Step("ask", label)])).values()
    [shown] = texts(group, "label")
    assert shown.endswith("…")
    assert len(shown) < len(label)
    assert label.startswith(shown[:-1])
    assert group.findtext(f"{SVG}title") == label


def test_boxes_are_wide_enough_for_their_labels_and_inside_the_viewbox():
    wide = [Step("a", "W" * 40), Step("b", "short", ("a",), kind="human")]
    root = render(wide)
    _, _, width, height = (float(n) for n in root.get("viewBox", "").split())
    assert float(root.get("width", "")) == width
    assert float(root.get("height", "")) == height
    for group in step_groups(root).values():
        x, y, w, h = box(group)
        assert w >= 28 * 9  # 27 capital Ws and an ellipsis, at well over 9px each
        assert x >= 0 and x + w <= width
        assert y >= 0 and y + h <= height


@pytest.mark.parametrize("highlight", [s.task_id for s in RMA], ids=[s.task_id for s in RMA])
def test_highlight_marks_exactly_one_step(highlight):
    root = render(RMA, {"check_warranty": "done"}, highlight=highlight)
    marked = [tid for tid, g in step_groups(root).items() if g.get("data-highlight") == "true"]
    assert marked == [highlight]
    outlines = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "highlight"]
    assert len(outlines) == 1
    assert outlines[0] in list(step_groups(root)[highlight])


@pytest.mark.parametrize("highlight", [None, "not_a_step", ""], ids=["none", "unknown", "empty"])
def test_no_highlight_without_a_matching_step(highlight):
    root = render(RMA, highlight=highlight)
    assert not any(g.get("data-highlight") for g in step_groups(root).values())
    assert not [r for r in root.iter(f"{SVG}rect") if r.get("class") == "highlight"]


def test_human_steps_are_drawn_distinctly():
    groups = step_groups(render(RMA))
    human, task = groups["create_sales_order"], groups["record_so_number"]
    assert human.get("data-kind") == "human"
    assert task.get("data-kind") == "task"
    human_rect = next(r for r in human.iter(f"{SVG}rect") if r.get("class") == "box")
    task_rect = next(r for r in task.iter(f"{SVG}rect") if r.get("class") == "box")
    assert float(human_rect.get("rx", "0")) > float(task_rect.get("rx", "0"))
    assert [g for g in human.iter(f"{SVG}g") if g.get("class") == "human-glyph"]
    assert not [g for g in task.iter(f"{SVG}g") if g.get("class") == "human-glyph"]


def test_empty_input_says_no_steps():
    svg = render_route_map([], {"x": "done"}, highlight="x")
    root = parse(svg)
    assert "No steps" in "".join(root.itertext())
    assert root.get("role") == "img"
    assert root.get("aria-label")
    assert not step_groups(root)
    assert not edges(root)


def test_single_step():
    root = render([Step("only", "Only step")], {"only": "current"})
    groups = step_groups(root)
    assert list(groups) == ["only"]
    assert groups["only"].get("data-state") == "current"
    assert not edges(root)


def test_unknown_upstream_is_ignored():
    root = render([Step("a", "A", ("missing",)), Step("b", "B", ("a", "also_missing"))])
    groups = step_groups(root)
    assert box(groups["a"])[0] < box(groups["b"])[0]  # "a" is still a root
    assert [(e.get("data-from"), e.get("data-to")) for e in edges(root)] == [("a", "b")]
    assert "missing" not in ET.tostring(root, encoding="unicode")


def test_a_repeated_task_id_is_drawn_once():
    groups = step_groups(render([Step("a", "First"), Step("a", "Second")]))
    assert list(groups) == ["a"]
    assert groups["a"].findtext(f"{SVG}title") == "First"


CYCLES = {
    "two-cycle": [Step("a", "A", ("b",)), Step("b", "B", ("a",))],
    "self-loop": [Step("a", "A", ("a",)), Step("b", "B", ("a",))],
    "cycle-below-a-root": [
        Step("root", "Root"),
        Step("x", "X", ("root", "z")),
        Step("y", "Y", ("x",)),
        Step("z", "Z", ("y",)),
        Step("after", "After", ("z",)),
    ],
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("steps", CYCLES.values(), ids=CYCLES.keys())
def test_a_cycle_terminates_and_draws_every_step(steps):
    root = render(steps, highlight=steps[0].task_id)
    assert set(step_groups(root)) == {s.task_id for s in steps}
    links = {(up, s.task_id) for s in steps for up in s.upstream if up != s.task_id}
    assert {(e.get("data-from"), e.get("data-to")) for e in edges(root)} == links


def test_legend_explains_every_state_and_human_steps():
    root = render(RMA)
    [legend] = [g for g in root.iter(f"{SVG}g") if g.get("class") == "legend"]
    keyed = [g.get("data-legend-state") for g in legend if g.get("data-legend-state")]
    assert keyed == list(STATES)
    text = "".join(legend.itertext())
    for state in STATES:
        assert state in text
    assert "human step" in text
    # Below the map, inside the picture.
    legend_top = min(float(r.get("y", "")) for r in legend.iter(f"{SVG}rect"))
    assert all(legend_top > box(g)[1] + box(g)[3] for g in step_groups(root).values())
    assert legend_top < float(root.get("height", ""))


def test_svg_is_accessible():
    root = render(RMA, {"check_warranty": "done", "create_sales_order": "current"})
    assert root.get("role") == "img"
    aria = root.get("aria-label", "")
    assert "5 steps" in aria
    assert "Check warranty: done" in aria
    assert "Create sales order: current" in aria


def test_output_is_deterministic():
    states = {"check_warranty": "done", "create_sales_order": "current"}
    reordered = dict(reversed(list(states.items())))
    first = render_route_map(RMA, states, highlight="tell_requester")
    assert render_route_map(list(RMA), dict(states), highlight="tell_requester") == first
    assert render_route_map(RMA, reordered, highlight="tell_requester") == first
    assert render_route_map(RMA, states) != first


def test_no_script_or_external_reference():
    svg = render_route_map(RMA, {"check_warranty": "done"})
    assert "<script" not in svg
    assert "href" not in svg
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
