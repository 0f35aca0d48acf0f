"""Signing sessions against rendering: the same tags, crawled both ways, side by side in one run.

For each platform (Xiaohongshu by name; Douyin and TikTok's client-rendered tag pages when
their adapters sign), one `tagarchive crawl` with signing sessions (crawler/downloader/
signing.py: a few live pages sign the adapter's API calls, which go out over HTTP) and one with
`TAGARCHIVE_SIGNING_ENABLED=0` (today's rendered path: Chromium loads a page per step and the
adapter reads the JSON it fetched), interleaved, the order swapped every repetition.

- tags per CPU-second: the tags stored over the CPU time of the crawl process and all its
  descendants (Playwright driver, Chromium) over their whole life, start-up included; CPU
  rather than wall time because the machine is shared;
- page navigations per tag, signed: the page documents the replica served during the signed
  crawl (the signing pages it opened, and any page rendered as a fallback), over the tags;
- peak PSS of the crawl process and its descendants (sampled every second; shared pages split
  between the processes that map them), signed over rendered.

Both crawls run at the same concurrency (4, the pages a rendering context holds at once), no
delay, against the replica in this process; each must store every tag. Full: 1,000 tags of
each platform, one repetition (the rendered Xiaohongshu crawl alone takes minutes of CPU), so
that the ~3 CPU-seconds every crawl spends starting (interpreter, imports, Chromium) weigh as
little on one side as on the other; quick: 40 and 20, two repetitions.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness import (
    REPLICA_NOTE,
    ChildRun,
    Figure,
    bench_tags,
    describe,
    median,
    mib,
    paired_ratio,
    prime_truth,
    run_tagarchive,
    running_replica,
)

CONCURRENCY = 4
TIMEOUT_S = 5400.0
OFF = {"TAGARCHIVE_SIGNING_ENABLED": "0"}


@dataclass(frozen=True)
class Subject:
    """One platform's side-by-side: its tags, what a page navigation is, the targets."""

    platform: str
    prefix: str
    tags: int
    quick_tags: int
    pages: tuple[str, ...]  # replica hit kinds that are page documents (a navigation)
    cpu_target: float  # signed / rendered tags per CPU-second
    navigation_target: float | None = None  # page navigations per tag, signed
    pss_target: float | None = None  # signed / rendered peak PSS
    variant: str | None = None  # switched on for every tag (TikTok: the client-rendered page)
    label: str = ""
    steps: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


SUBJECTS = {
    "xiaohongshu": Subject("xiaohongshu", "benchsign", 1000, 40,
                           ("home", "topic_page", "search_page"), cpu_target=10.0,
                           navigation_target=0.05, pss_target=0.5, label="Xiaohongshu",
                           steps="topic search + notes feed (signed) vs search page + topic page "
                                 "(rendered)"),
    "douyin": Subject("douyin", "benchdy", 1000, 20, ("home", "hashtag_page", "search_page"),
                      cpu_target=5.0, label="Douyin",
                      steps="challenge search + detail + feed as fetches in a signing page vs "
                            "search page + hashtag page (rendered)"),
    "tiktok": Subject("tiktok", "benchtt", 1000, 20, ("home",), cpu_target=5.0,
                      variant="csr", label="TikTok client-rendered",
                      steps="the tag page over HTTP, then challenge/detail + item_list signed vs "
                            "the tag page rendered"),
}




def _crawl(server: Any, subject: Subject, tags: list[str], signed: bool) -> Callable[[], ChildRun]:
    def all_stored(r: ChildRun) -> str | None:
        if r.extra["snapshots"] != len(tags):
            return f"{r.extra['snapshots']} snapshots for {len(tags)} tags"
        return None

    def crawl() -> ChildRun:
        server.reset_hits()
        run = run_tagarchive(subject.platform, tags, server.url, CONCURRENCY,
                             f"bench-signing-{subject.platform}-", all_stored,
                             env=None if signed else OFF, timeout=TIMEOUT_S)
        run.label = "signed" if signed else "rendered"
        hits = server.hits_snapshot()
        run.extra["page_hits"] = sum(n for (p, kind), n in hits.items()
                                     if p == subject.platform and kind in subject.pages)
        return run
    return crawl


def run(quick: bool = False, reps: int | None = None, log: Any = print,
        only: list[str] | None = None, tags: int | None = None) -> dict[str, Any]:
    """Each subject's interleaved repetitions; the figures and raw runs."""
    reps = reps or (2 if quick else 1)
    figures: list[Figure] = []
    raw: dict[str, Any] = {}
    with running_replica() as server:
        for name in only or list(SUBJECTS):
            subject = SUBJECTS[name]
            n = tags or (subject.quick_tags if quick else subject.tags)
            names = bench_tags(subject.prefix, n, 4)
            if subject.variant:
                for tag in names:
                    server.world.set_variant(subject.platform, tag, subject.variant)
            prime_truth(server, subject.platform, names)
            signed: list[ChildRun] = []
            rendered: list[ChildRun] = []
            pairs = ((_crawl(server, subject, names, True), signed),
                     (_crawl(server, subject, names, False), rendered))
            for rep in range(reps):
                for crawl, into in pairs if rep % 2 == 0 else pairs[::-1]:
                    into.append(crawl())
                    log(f"  signing [{name}] rep {rep + 1}/{reps} {describe(into[-1])}, "
                        f"{into[-1].extra['page_hits']} pages")
            server.world.clear_variants()
            figures += subject_figures(subject, n, signed, rendered)
            raw[name] = {"signed": [vars(r) for r in signed],
                         "rendered": [vars(r) for r in rendered], "tags": n}
    return {"figures": figures, "runs": raw,
            "params": {"concurrency": CONCURRENCY, "reps": reps}}


def subject_figures(subject: Subject, n: int, signed: list[ChildRun],
                    rendered: list[ChildRun]) -> list[Figure]:
    """Tags per CPU-second, navigations per tag and peak PSS, signed against rendered."""
    label = f"signing [{subject.label or subject.platform}]"
    where = (f"{n:,} {subject.label or subject.platform} tags, {subject.steps}, concurrency "
             f"{CONCURRENCY}, {len(signed)} interleaved rep(s)")
    signed_cpu = [n / r.cpu_s for r in signed if r.cpu_s]
    rendered_cpu = [n / r.cpu_s for r in rendered if r.cpu_s]
    cpu_ratio = paired_ratio(signed_cpu, rendered_cpu)
    signed_wall = [n / r.crawl_s for r in signed if r.crawl_s]
    rendered_wall = [n / r.crawl_s for r in rendered if r.crawl_s]
    figs = [
        Figure(f"{label}: tags per CPU-second, signed", median(signed_cpu), "tags/CPU-s",
               ratio=cpu_ratio, ratio_of="signed / rendered", samples=signed_cpu,
               target=f">= {subject.cpu_target:g}x rendered",
               meets_target=cpu_ratio >= subject.cpu_target,
               note=f"{where}; CPU of the crawl process tree (crawler, Playwright driver, "
                    f"Chromium) over its whole life: signed "
                    f"{', '.join(f'{r.cpu_s:.1f}' for r in signed)} s, rendered "
                    f"{', '.join(f'{r.cpu_s:.1f}' for r in rendered)} s; wall time over the "
                    f"crawl phase: {median(signed_wall):.1f} tags/s signed, "
                    f"{median(rendered_wall):.2f} rendered"),
        Figure(f"{label}: tags per CPU-second, rendered", median(rendered_cpu), "tags/CPU-s",
               ratio=1.0, ratio_of="reference", samples=rendered_cpu),
    ]
    if subject.navigation_target is not None:
        per_tag = [r.extra["page_hits"] / n for r in signed]
        value = max(per_tag)
        figs.append(Figure(
            f"{label}: page navigations per tag, signed", value, "pages/tag",
            target=f"<= {subject.navigation_target:g}",
            meets_target=value <= subject.navigation_target, samples=per_tag,
            note=f"page documents the replica served during the signed crawls (signing pages "
                 f"opened, fallbacks rendered): "
                 f"{', '.join(str(r.extra['page_hits']) for r in signed)} for {n:,} tags; the "
                 f"rendered crawls: {', '.join(str(r.extra['page_hits']) for r in rendered)}"))
    if subject.pss_target is not None:
        signed_pss = [mib(r.peak_pss_tree) for r in signed]
        rendered_pss = [mib(r.peak_pss_tree) for r in rendered]
        ratio = paired_ratio(signed_pss, rendered_pss)
        figs += [
            Figure(f"{label}: peak PSS of crawler + browser, signed", median(signed_pss), "MiB",
                   ratio=ratio, ratio_of="signed / rendered", samples=signed_pss,
                   target=f"<= {subject.pss_target:g}x rendered",
                   meets_target=ratio <= subject.pss_target,
                   note="PSS summed over the crawl process and its descendants, sampled every "
                        "second (shared pages split between the processes that map them); "
                        f"peak processes: signed {max(r.peak_processes for r in signed)}, "
                        f"rendered {max(r.peak_processes for r in rendered)}"),
            Figure(f"{label}: peak PSS of crawler + browser, rendered", median(rendered_pss),
                   "MiB", ratio=1.0, ratio_of="reference", samples=rendered_pss),
        ]
    return figs


def main() -> None:
    """Standalone: python -m benchmarks.signing [--quick] [--only xiaohongshu] [--tags N]."""
    from benchmarks.__main__ import print_table

    parser = argparse.ArgumentParser(prog="python -m benchmarks.signing")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int)
    parser.add_argument("--tags", type=int, help="tags per platform (default: the mode's)")
    parser.add_argument("--only", choices=sorted(SUBJECTS), action="append")
    args = parser.parse_args()
    print(REPLICA_NOTE)
    result = run(args.quick, args.reps, only=args.only, tags=args.tags)
    print_table(result["figures"])


if __name__ == "__main__":
    main()
