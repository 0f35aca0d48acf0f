"""The command line's own errors, each one line on stderr and an exit code; the lowest module
of `crawler.cli`, so every command module can raise them without importing the parser."""

from __future__ import annotations


class UsageError(Exception):
    """Bad arguments: reported as one line, exit code 2."""


class EnvironmentProblem(Exception):
    """The machine cannot run this (no browser, unwritable output): exit code 3."""
