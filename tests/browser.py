"""Open a page in headless Chromium and read back what a person would see go wrong: images that
did not load, content wider than the window (horizontal overflow), errors on the console, and
sections drawn with no height.

The page is copied with two scripts added: one at the top of <head> that records errors (before
any of the page's own scripts run), one that measures after the load event and writes the result
into the DOM, which ``--dump-dom`` prints. No WebDriver, no CDP: the browser alone.

In CI (``CI`` set) a missing browser is a failure, not a skip: `.ci/run` installs Debian's
``chromium``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

WIDTH = 1000  # px: a laptop browser window with a side panel open

_RECORD = """<script>window.__errors=[];
window.addEventListener('error',function(e){window.__errors.push(String(e.message||(e.target&&(e.target.src||e.target.href))||'error'));},true);
(function(){var ce=console.error;console.error=function(){window.__errors.push([].slice.call(arguments).join(' '));ce.apply(console,arguments);};})();
</script>"""

_MEASURE = """<script>window.addEventListener('load',function(){
var W=document.documentElement.clientWidth;
var broken=[].slice.call(document.images).filter(function(i){return !i.complete||i.naturalWidth===0;})
  .map(function(i){return i.alt||i.src.slice(0,60);});
var wide=[].slice.call(document.querySelectorAll('body *')).filter(function(e){
  var r=e.getBoundingClientRect(); if(r.width===0) return false;
  for(var p=e.parentElement;p;p=p.parentElement){var s=getComputedStyle(p).overflowX; if(s==='auto'||s==='scroll') return false;}
  return r.right>W+1;});
wide=wide.filter(function(e){return wide.indexOf(e.parentElement)<0;})  // the outermost of each overflow
  .map(function(e){return e.tagName+(e.id?'#'+e.id:'')+(e.className?'.'+e.className:'');});
var sections=[].slice.call(document.querySelectorAll('h2')).map(function(h){
  var box=h.parentElement.getBoundingClientRect(); return {title:h.textContent.trim(),height:box.height};});
var out=document.createElement('pre'); out.id='__check';
out.textContent=JSON.stringify({broken:broken,wide:wide.slice(0,20),errors:window.__errors,
  scroll_width:document.documentElement.scrollWidth,width:W,sections:sections});
document.body.appendChild(out);});</script>"""


def find_browser() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def require_browser() -> str:
    browser = find_browser()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium in CI: .ci/run installs Debian's chromium; check that step")
        pytest.skip("no chromium on this machine (apt-get install chromium; CI installs it)")
    return browser


def check_page(page: Path, tmp: Path) -> dict:
    """Render ``page`` at ``WIDTH`` px and return {broken, wide, errors, scroll_width, width, sections}."""
    text = Path(page).read_text(encoding="utf-8")
    head = re.search(r"<head[^>]*>", text)
    assert head and "</body>" in text, f"{page}: not a full HTML page"
    text = text[: head.end()] + _RECORD + text[head.end():]
    text = text.replace("</body>", _MEASURE + "</body>", 1)
    copy = Path(tmp) / f"checked-{Path(page).name}"
    copy.write_text(text, encoding="utf-8")
    done = subprocess.run([require_browser(), "--headless=new", "--no-sandbox", "--disable-gpu",
                           f"--window-size={WIDTH},1200", "--virtual-time-budget=10000", "--dump-dom",
                           copy.resolve().as_uri()], capture_output=True, text=True, timeout=180, check=False)
    found = re.search(r'<pre id="__check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the browser did not finish the page (exit {done.returncode}): {done.stderr[-500:]}"
    return json.loads(html.unescape(found.group(1)))


def assert_renders(page: Path, tmp: Path, sections: list[str] | None = None) -> dict:
    """No broken image, no horizontal overflow, no console error, every (named) section drawn."""
    seen = check_page(page, tmp)
    assert not seen["broken"], f"broken images: {seen['broken']}"
    assert not seen["errors"], f"console errors: {seen['errors']}"
    assert seen["scroll_width"] <= seen["width"] and not seen["wide"], \
        f"wider than the {seen['width']} px window: {seen['wide']} (scroll width {seen['scroll_width']})"
    drawn = {s["title"]: s["height"] for s in seen["sections"]}
    for title in sections or drawn:
        assert drawn.get(title, 0) > 0, f"section '{title}' not drawn (sections: {sorted(drawn)})"
    return seen
