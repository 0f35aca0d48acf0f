"""Benchmarks of tagarchive against bare Scrapy baselines, run side by side on the replica.

`python -m benchmarks [--quick]` runs them all, prints a table and writes
`benchmarks/results/latest.json`. Every compared figure is a ratio of two crawls measured in the
same invocation (interleaved repetitions, medians), because the machine is shared and noisy:
absolute timings are reported for orientation only and are never asserted anywhere.
"""

from __future__ import annotations
