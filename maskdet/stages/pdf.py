"""The combined report printed to PDF by the system Chromium (through
Playwright, as the browser tests drive it; never a browser download)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from maskdet.errors import MaskdetError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class NoChromiumError(MaskdetError):
    """No browser to print the PDF with."""


def find_chromium() -> str | None:
    """$MASKDET_CHROMIUM, or the first system Chromium / Chrome on PATH."""
    named = os.environ.get("MASKDET_CHROMIUM")
    if named:
        return named
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def print_pdf(html: Path, pdf: Path) -> None:
    """``html`` (self-contained) as an A4 PDF. Requests that leave the machine
    (the CDN scripts nbconvert's template names) are refused: the page must
    print the same offline, and nothing it needs comes from there."""
    from playwright.sync_api import sync_playwright

    browser_path = find_chromium()
    if browser_path is None:
        raise NoChromiumError(
            "no Chromium to print reports/pdf/report.pdf: `make browser` installs it "
            "(or set MASKDET_CHROMIUM to a Chromium or Chrome binary)"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            local = lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
            page.route("**/*", local)
            page.goto(html.resolve().as_uri(), wait_until="load", timeout=120_000)
            page.emulate_media(media="print")
            page.pdf(
                path=str(pdf),
                format="A4",
                print_background=True,
                margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"},
            )
        finally:
            browser.close()
