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
