"""Headless Chromium for the browser tests (Debian's package; the ``chromium`` fixture is in
tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
