"""The report: a tag's growth as one self-contained HTML page (and PNG charts).

model (the data the page shows) <- build (reading the archive into it) and labels (numbers and
names as people read them) <- charts (inline SVG) <- page (the HTML) and png (matplotlib).
Callers import the public names from here.
"""

from __future__ import annotations

from crawler.report.build import build_report, build_tag
from crawler.report.labels import (
    format_cjk,
    format_compact,
    format_duration,
    format_exact,
    format_time,
    platform_color,
    platform_title,
)
from crawler.report.model import (
    MissingPlotting,
    NothingToReport,
    Report,
    ReportRequest,
    ReportWriteError,
    TagReport,
)
from crawler.report.page import render_html, write_report
from crawler.report.png import write_pngs

__all__ = [
    "MissingPlotting",
    "NothingToReport",
    "Report",
    "ReportRequest",
    "ReportWriteError",
    "TagReport",
    "build_report",
    "build_tag",
    "format_cjk",
    "format_compact",
    "format_duration",
    "format_exact",
    "format_time",
    "platform_color",
    "platform_title",
    "render_html",
    "write_pngs",
    "write_report",
]
