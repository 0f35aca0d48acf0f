"""The report's charts as PNG files, drawn with matplotlib (an optional dependency)."""

from __future__ import annotations

import hashlib
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

from crawler.report.charts import as_datetime
from crawler.report.labels import format_compact, platform_color, platform_title
from crawler.report.model import Chart, MissingPlotting, Report, ReportWriteError, TagReport


def _file_stem(tag: str, index: int) -> str:
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "-" for ch in tag)
    safe = "-".join(part for part in safe.split("-") if part)[:40]
    if safe != tag:  # "tiktok难民" must not share a name with "tiktok"
        safe = f"{safe or 'tag'}-{hashlib.sha1(tag.encode()).hexdigest()[:6]}"
    return f"{index:02d}-{safe}"


def write_pngs(report: Report, directory: Path) -> list[Path]:
    """Every chart as a PNG (matplotlib), named <nn>-<tag>-<chart>.png."""
    try:
        import matplotlib
    except ImportError:
        raise MissingPlotting(
            "--png needs matplotlib: pip install 'tagarchive[png]'") from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportWriteError(f"cannot create {directory}: {exc.strerror or exc}") from None
    order = sorted({p for t in report.tags for p in t.platforms})
    colors = {p: platform_color(p, order) for p in order}
    written = []
    # Tags are often Chinese: fall back to any installed CJK font for the glyphs DejaVu lacks.
    families = ["DejaVu Sans", *_cjk_families()]
    with matplotlib.rc_context({"font.family": families}):
        for index, tag in enumerate(report.tags, 1):
            written += _write_tag_pngs(tag, index, directory, colors)
    return written


def _cjk_families() -> list[str]:
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    wanted = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei",
              "WenQuanYi Micro Hei", "Droid Sans Fallback", "PingFang SC", "Microsoft YaHei")
    return [name for name in wanted if name in names]


def _write_tag_pngs(tag: TagReport, index: int, directory: Path,
                    colors: dict[str, str]) -> list[Path]:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    written = []
    for chart in tag.charts:
        figure = Figure(figsize=(8, 4), dpi=120, layout="constrained")
        axes = figure.add_subplot()
        _plot(axes, chart, colors)
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_compact(int(v))))
        axes.set_title(f"#{tag.display}: {chart.title}", loc="left", fontsize=11)
        axes.grid(True, color="#e5e7eb", linewidth=0.8)
        axes.spines[["top", "right"]].set_visible(False)
        if chart.series:
            axes.legend(frameon=False, fontsize=9)
        path = directory / f"{_file_stem(tag.tag, index)}-{chart.id}.png"
        with warnings.catch_warnings():
            # Without any CJK font installed matplotlib warns per missing glyph and draws a box;
            # the chart is still right, and the fix (a font) is outside this program.
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
            try:
                figure.savefig(path)
            except OSError as exc:
                raise ReportWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    return written


def _plot(axes: Any, chart: Chart, colors: dict[str, str]) -> None:
    count = max(1, len(chart.series))
    for index, series in enumerate(chart.series):
        xs = [as_datetime(p.x) for p in series.points]
        ys = [p.value for p in series.points]
        label = platform_title(series.platform)
        color = colors[series.platform]
        if chart.kind == "line":
            axes.plot(xs, ys, color=color, linewidth=2, marker="o", markersize=4, label=label)
        else:
            bucket = chart.bucket or timedelta(days=1)
            width = bucket * 0.8 / count
            axes.bar([x + bucket * 0.1 + width * index for x in xs], ys, width=width,
                     align="edge", color=color, label=label)
    if chart.kind == "line":
        if chart.scale == "log":
            axes.set_yscale("log")
        else:
            axes.set_ylim(bottom=0)
        for threshold in chart.thresholds:
            low, high = axes.get_ylim()
            if low < threshold <= high:
                axes.axhline(threshold, color="#9ca3af", linestyle="--", linewidth=0.8)
    axes.set_ylabel(chart.unit)
    axes.set_xlabel("UTC")
