"""Server-rendered SVG plots: escaped labels, axis maximum, empty data said so."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from edge.web.console import plots


@pytest.mark.parametrize("v, m", [(0, 1.0), (1, 1.0), (3, 5.0), (28, 50.0), (101, 200.0), (60000, 60000.0)])
def test_nice_max(v, m):
    assert plots._nice_max(v) == m


def test_bars_are_valid_svg_with_escaped_labels():
    svg = str(plots.bars(["<script>", "b&c"], [3, 7], title="t <x>"))
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag.endswith("svg")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "b&amp;c" in svg
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert heights[1] > heights[0] > 0  # 7 taller than 3


def test_empty_plots_say_so():
    assert "no data yet" in plots.bars(["a"], [0], title="x")
    assert "no data yet" in plots.grouped({}, title="x")


def test_grouped_stacks_and_legend():
    svg = str(plots.grouped({"gate-1": {"glasses": 2, "too_far": 1}, "gate-2": {"glasses": 4}}, title="r"))
    ET.fromstring(svg)
    assert svg.count("<rect") == 3 + 2  # three segments, two legend swatches
    assert ">3</text>" in svg and ">4</text>" in svg  # row totals


def test_a_long_title_widens_a_narrow_chart_instead_of_being_cut():
    import re

    title = "confirmation rate (PPV) per station, % (last 24 h)"
    # (chart, where its title starts): 13 px system-ui is about 7 px per character
    for svg, title_x in ((plots.bars(["gate-1"], [50], title=title, width=320), 36),
                         (plots.grouped({"g": {"a": 1}}, title=title, width=200), 0)):
        width = int(re.search(r'<svg[^>]* width="(\d+)"', str(svg)).group(1))
        assert width >= title_x + 7 * len(title), width
    assert 'width="640"' in str(plots.bars(["a"], [1], title="short"))  # short titles keep the asked width
