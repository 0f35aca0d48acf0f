"""Saved platform responses (tests/fixtures/<platform>/<case>/) read back as adapter input."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from crawler.platforms.base import Captured, Page
from crawler.text.tags import TagRef

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASES = sorted(p for p in FIXTURES.glob("*/*") if (p / "expected.json").is_file()
               and p.parent.name != "real")
# responses captured from the real platforms (tests/fixtures/real/README.md)
REAL = FIXTURES / "real"
REAL_CASES = sorted(p for p in REAL.glob("*/*") if p.is_dir())


def body_of(folder: Path) -> str:
    """The saved body: body.html (a page) or body.json (an API answer, as published)."""
    html = folder / "body.html"
    return (html if html.is_file() else folder / "body.json").read_text(encoding="utf-8")


def load_case(folder: Path) -> tuple[str, TagRef, str, dict, Page]:
    meta = json.loads((folder / "page.json").read_text())
    captured = ()
    if (folder / "captured.json").is_file():
        captured = tuple(Captured(**c) for c in json.loads((folder / "captured.json").read_text()))
    page = Page(url=meta["url"], status=meta["status"], headers=meta["headers"],
                text=body_of(folder),
                observed_at=datetime.fromisoformat(meta["observed_at"]),
                rendered=meta["rendered"], captured=captured)
    return folder.parent.name, TagRef(**meta["tag"]), meta["step"], meta["state"], page
