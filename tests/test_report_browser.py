"""The browser check itself (tests/browser.py) catches what it is meant to catch, so that a
passing report or comparison page check means something."""

from __future__ import annotations

import pytest

from .browser import assert_renders, check_page, require_browser

BAD = """<!DOCTYPE html><html><head><title>bad</title></head><body>
<section><h2>Broken</h2><img alt="missing-plot" src="data:image/png;base64,AAAA"></section>
<section><h2>Wide</h2><table style="width:3000px"><tr><td>by dose</td></tr></table></section>
<section><h2>Scrolled</h2><div style="overflow-x:auto"><table style="width:3000px"><tr><td>ok</td></tr></table></div></section>
<script>console.error("boom");</script></body></html>"""

GOOD = """<!DOCTYPE html><html><head><title>good</title></head><body>
<section><h2>Fine</h2><p>text</p></section></body></html>"""


def test_the_check_sees_a_broken_image_an_overflow_and_a_console_error(tmp_path):
    require_browser()
    (tmp_path / "bad.html").write_text(BAD)
    seen = check_page(tmp_path / "bad.html", tmp_path)
    assert seen["broken"] == ["missing-plot"]
    assert "boom" in seen["errors"]  # (the image that failed to load is reported there too)
    assert seen["scroll_width"] > seen["width"] and any(w.startswith("TABLE") for w in seen["wide"])
    assert len(seen["wide"]) == 1  # the table inside a scrolling box is not an overflow of the page
    with pytest.raises(AssertionError, match="broken images"):
        assert_renders(tmp_path / "bad.html", tmp_path)
    (tmp_path / "good.html").write_text(GOOD)
    assert_renders(tmp_path / "good.html", tmp_path, ["Fine"])
    with pytest.raises(AssertionError, match="section 'Missing' not drawn"):
        assert_renders(tmp_path / "good.html", tmp_path, ["Missing"])
