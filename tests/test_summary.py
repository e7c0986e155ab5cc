"""The one number formatter (summary.fmt) and the presets the terminal, the report and compare use:
exact strings, so a change to any of them shows here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mnemoscope import compare, summary
from mnemoscope.report import comparison, html
from mnemoscope.summary import fmt

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("value, kwargs, text", [
    (None, {}, "-"), (NAN, {}, "-"), (INF, {}, "-"), (-INF, {"missing": "—"}, "—"), ("text", {}, "text"),
    (12, {}, "12"), (12.0, {}, "12"), (-3.0, {}, "-3"), (1234, {}, "1234"), (1e15, {}, "1000000000000000.000"),
    (0.87349, {}, "0.873"), (0.87351, {"digits": 2}, "0.87"), (np.float32(0.25), {}, "0.250"), (True, {}, "1"),
    (1234, {"whole": "grouped"}, "1,234"), (12, {"whole": "grouped"}, "12"), (2.5, {"whole": "grouped"}, "2.500"),
    (5, {"whole": "large"}, "5.000"), (1000, {"whole": "large"}, "1,000"), (-2500.0, {"whole": "large"}, "-2,500"),
    (12, {"whole": "none"}, "12.000"), (0.123456, {"whole": "none", "digits": 1}, "0.1"),
    (0.87349, {"digits": 4, "significant": True}, "0.8735"), (123456.7, {"digits": 4, "significant": True}, "1.235e+05"),
    (42.0, {"digits": 4, "significant": True}, "42"), (1234567.0, {"digits": 6, "significant": True, "whole": "none"},
                                                         "1.23457e+06"),
])
def test_fmt_exact_strings(value, kwargs, text):
    assert fmt(value, **kwargs) == text


def test_the_recipe_summaries_columns_print_fixed_or_significant_digits():
    # the terminal tables of quickstart, quickstart_lira, extraction, contamination (2 decimals) and the
    # contamination family's headline (3 significant digits): a whole value keeps its decimals
    assert [fmt(v, 2, whole="none") for v in (None, 0.5, 3, 0.125)] == ["-", "0.50", "3.00", "0.12"]
    assert [fmt(v, 3, significant=True, whole="none") for v in (None, 0.012345, 120.0, 5)] == ["-", "0.0123", "120", "5"]


def test_fmt_refuses_an_unknown_whole_style():
    with pytest.raises(ValueError, match="whole must be one of"):
        fmt(1.0, whole="rounded")


def test_six_significant_digits_are_python_g_format():
    for x in (0.5, 1e-7, 123456.0, 1234567.0, -3.25, 1 / 3, 1e20, 2.0):
        assert fmt(x, 6, significant=True, whole="none") == f"{x:g}"


def test_terminal_metric_format_counts_whole_and_the_rest_with_decimals():
    assert summary.fmt_metric("mia/loss/auc", 1.0) == "1.000"
    assert summary.fmt_metric("mia/loss/n", 300.0) == "300"
    assert summary.fmt_metric("model/parameters", 1234567) == "1234567"
    assert summary.fmt_metric("mia/loss/auc", None) == "-" and summary.fmt_metric("x", NAN) == "-"
    assert summary.fmt_metric("x", "skipped") == "skipped"


def test_report_formats_keep_their_table_style():
    assert html.fmt_value(5) == "5.000" and html.fmt_value(1234.0) == "1,234" and html.fmt_value(0.8734, 2) == "0.87"
    assert html.fmt_value(None) == html.DASH and html.fmt_value(NAN) == html.DASH
    assert html.fmt_metric("mia/loss/n", 5) == "5" and html.fmt_metric("model/parameters", 1234567) == "1,234,567"
    assert html.fmt_metric("mia/loss/auc", 5) == "5.000"
    assert html.fmt_metric("x/n", np.int64(7)) == "7.000"  # not an int or float: the table style
    assert html.fmt_metric("x/n", True) == "1.000"


def test_compare_cells_and_statistics():
    assert compare.fmt_cell(0.873456) == "0.8735" and compare.fmt_cell(12.0) == "12" and compare.fmt_cell(True) == "true"
    assert compare.fmt_cell(None) == "null" and compare.fmt_cell(NAN) == "nan" and compare.fmt_cell(compare.MISSING) == ""
    assert comparison._num(0.873456) == "0.8735" and comparison._num(None) == html.DASH
    assert comparison._num(NAN) == html.DASH and comparison._num(3.0) == "3"
