"""The documentation site as a reader sees it, in Chromium at 1280 px: no
code line runs out of its box, no option name is broken at its hyphens.

Covers: docs/_static/kamikaze.css, docs/conf.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Browser

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(DOCS), str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def test_code_fits_its_box_and_options_stay_whole(browser: Browser, site: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        for html in sorted(site.glob("*.html")):
            if html.name in ("genindex.html", "search.html"):
                continue
            page.goto(html.as_uri())
            cut = page.evaluate(
                """() => Array.from(document.querySelectorAll("div.highlight pre"))
                    .filter((pre) => pre.scrollWidth > pre.clientWidth + 1)
                    .map((pre) => pre.textContent.slice(0, 80))"""
            )
            assert cut == [], f"{html.name}: code cut off at 1280 px: {cut}"
            broken = page.evaluate(
                """() => Array.from(document.querySelectorAll("code.literal"))
                    .filter((code) => /^--?[\\w-]+$/.test(code.textContent.trim()))
                    .filter((code) => code.getClientRects().length > 1)
                    .map((code) => code.textContent)"""
            )
            assert broken == [], f"{html.name}: option names broken across lines: {broken}"
    finally:
        context.close()
