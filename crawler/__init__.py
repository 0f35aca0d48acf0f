"""tagarchive's crawler: a Scrapy project in layers, each importing only the layers below it.

    cli/         the command line: `main` builds the parser, one module per command group
    serve/       `tagarchive serve`: the read-only live web view (Starlette) over the layers below
    services/    outside Scrapy: watch config, scheduler, status, alerts, export, reparse, demo
    report/      a tag's growth as one HTML page: model, build, charts, page, png
    spiders/     snapshot, backfill (and its walk state), the worker (and its Redis job queue)
    settings.py  every Scrapy setting the project relies on
    extensions/  the run record (RunState; RunRecord: outcomes, health, the runs row, exit code),
                 the WARC archive, health checks, logs
    downloader/  middlewares (retry, session, render), signing sessions, the platform breaker,
                 Chromium and capture, sign-in, pages, the user's own browser (CDP, profiles)
                 and the signed-in check
    platforms/   one pure adapter per platform: URLs, steps, parsers from a Page to items
    rules/       the item rules as plain functions: normalize, privacy, problems, dedupe key, row
    items.py     the items the spiders yield (fields = storage columns)
    text/        tags, displayed counters, timestamps, mojibake, language, hashtags: pure
    clock.py     the observation time (wall clock, or the replayed one of a demo)
    signals.py   the project's signals: a run's life (run_started, run_ending, run_ended), what
                 the run record keeps (tag_outcome, storage_failed, privacy_in_force), what the
                 writers' owners
                 are asked (item_rejected, flush_rows, publish_archive)
    logredact.py what is never written: registered secrets, URL credentials

Each piece of a run's state has one owner: the store pipeline its DatasetWriter, the archive
extension its WARC writer, the run record how it went. pipelines/ (normalize -> privacy ->
validate -> dedupe -> store) is loaded by name from settings; storage/ imports neither.
`make lint` checks the layers (pyproject.toml [tool.importlinter]); the path of one tag is in
docs/architecture.md.
"""
