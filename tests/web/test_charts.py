from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from tempo.web.charts import Bar, bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def rects(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(f"{SVG}rect"))


def test_bars_are_proportional_and_carry_their_numbers():
    svg = bar_chart([Bar("a", 10), Bar("b", 5), Bar("c", 0)], title="Counts")
    widths = {r.get("data-label"): float(r.get("width")) for r in rects(svg)}
    assert widths["a"] == pytest.approx(2 * widths["b"]) and widths["c"] == 0
    assert [r.get("data-value") for r in rects(svg)] == ["10", "5", "0"]


def test_max_value_scales_percentages():
    half = rects(bar_chart([Bar("x", 50)], title="%", max_value=100))[0]
    full = rects(bar_chart([Bar("x", 100)], title="%", max_value=100))[0]
    assert float(half.get("width")) == pytest.approx(float(full.get("width")) / 2)


def test_funnel_bars_are_centred():
    wide, narrow = rects(bar_chart([Bar("a", 4), Bar("b", 2)], title="Funnel", centred=True))
    centre = lambda r: float(r.get("x")) + float(r.get("width")) / 2  # noqa: E731
    assert centre(wide) == pytest.approx(centre(narrow))


@pytest.mark.parametrize(
    "label",
    ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "a & b"],
    ids=["script", "attribute-breakout", "ampersand"],
)
def test_labels_are_escaped(label):
    svg = bar_chart([Bar(label, 1, href=f"/x?q={label}")], title=label)
    root = ET.fromstring(svg)  # still well-formed XML
    assert "<script" not in svg and "<img" not in svg
    assert rects(svg)[0].get("data-label") == label
    assert root.find(f"{SVG}title").text == label


def test_no_bars_says_so():
    svg = bar_chart([], title="Nothing")
    assert rects(svg) == [] and re.search("No data", svg)


LONG = "Customer service and after-sales support for the Benelux region, second line"


def _texts(svg: str, cls: str) -> list[ET.Element]:
    return [t for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("class") == cls]


def test_a_long_name_is_shortened_and_keeps_its_full_text_in_a_tooltip():
    svg = bar_chart([Bar(LONG, 3, "3 · up to 2 d 4 h late"), Bar("Sales", 1)], title="Overdue")
    long_label, short_label = _texts(svg, "label")
    assert "".join(long_label.itertext()).endswith("…") and long_label.find(f"{SVG}title").text == LONG
    assert short_label.find(f"{SVG}title") is None and "".join(short_label.itertext()) == "Sales"


@pytest.mark.parametrize("label", [LONG, "Sales"])
def test_label_and_value_share_a_line_without_touching_and_stay_inside_the_chart(label):
    from tempo.web.charts import _CHAR_W

    svg = bar_chart([Bar(label, 3, "3 · up to 2 d 4 h late"), Bar("x", 5)], title="Overdue")
    width = float(ET.fromstring(svg).get("width"))
    for shown, value in zip(_texts(svg, "label"), _texts(svg, "value"), strict=True):
        text = shown.text or next(iter(shown)).tail  # after the tooltip, if any
        label_end = float(shown.get("x")) + len(text) * _CHAR_W
        value_start = float(value.get("x")) - len(value.text) * _CHAR_W  # anchored at its end
        assert float(shown.get("x")) >= 0 and float(value.get("x")) <= width
        assert label_end < value_start
    bars = rects(svg)
    assert all(float(r.get("x")) + float(r.get("width")) <= width for r in bars)
    # Each row's label line sits above its bar, and the next row below both.
    label_ys = [float(t.get("y")) for t in _texts(svg, "label")]
    assert label_ys[0] < float(bars[0].get("y")) < label_ys[1]


def test_the_chart_is_drawn_for_a_phone_and_its_text_is_not_scaled_away():
    """A chart wider than a phone's card shrinks to fit (``max-width: 100%``), and its text with it:
    drawn 400 px wide, 13 px text stays above 10 px in a 340 px card."""
    root = ET.fromstring(bar_chart([Bar("a", 1)], title="t"))
    assert float(root.get("width")) <= 400 and float(root.get("font-size")) >= 13
