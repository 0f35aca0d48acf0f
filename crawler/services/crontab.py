"""`tagarchive crontab`: the watches as crontab lines, for machines that run cron, not a service."""

from __future__ import annotations

from crawler.services.fires import CRON
from crawler.services.runner import default_command
from crawler.services.watchmodel import Config
from crawler.services.watchvalues import format_duration


def every_as_cron(seconds: float) -> str | None:
    """The crontab schedule of an interval, if cron can say it (cron counts clock minutes)."""
    if seconds % 60:
        return None
    minutes = int(seconds // 60)
    if minutes < 60:
        if minutes == 1:
            return "* * * * *"
        return f"*/{minutes} * * * *" if 60 % minutes == 0 else None
    if minutes % 60:
        return None
    hours = minutes // 60
    if hours < 24:
        if hours == 1:
            return "0 * * * *"
        return f"0 */{hours} * * *" if 24 % hours == 0 else None
    return {24: "0 0 * * *", 168: "0 0 * * 0"}.get(hours)


def crontab_lines(config: Config, command: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Crontab lines equivalent to the config's watches, and a warning per watch cron cannot say.

    Each line runs `tagarchive crawl` under coreutils `timeout` (the watch's time limit, then
    SIGKILL after kill_grace); two overlapping crawls are safe, every run writes its own files.
    """
    import shlex

    command = command or list(config.service.crawl_command) or default_command()
    kill = f"{config.service.kill_grace:g}s"
    lines = [
        f"# tagarchive watches from {config.path}",
        f"# install: tagarchive crontab --config {shlex.quote(str(config.path))} | crontab -",
        "# (that replaces your crontab; merge by hand if you have other lines)",
        "SHELL=/bin/sh",
    ]
    warnings = []
    ordered = sorted(config.watches.values(),
                     key=lambda w: (w.cadence.every is None and w.cadence.timezone != "local",
                                    w.cadence.timezone if w.cadence.every is None else ""))
    zone = "local"
    for watch in ordered:
        cadence = watch.cadence
        when = every_as_cron(cadence.every) if cadence.every is not None else cadence.cron
        if when is None:
            text = (f"watch {watch.name}: every {format_duration(cadence.every or 0)} has no "
                    "crontab equivalent (cron fires on clock minutes); give it a cron expression")
            warnings.append(text)
            lines.append(f"# {text}")
            continue
        if cadence.every is None and cadence.timezone != zone:
            lines.append("# CRON_TZ is honoured by cronie; Debian's cron uses the machine's zone")
            lines.append(f"CRON_TZ={cadence.timezone}")
            zone = cadence.timezone
        env = [f"{name}={shlex.quote(value)}" for name, value in sorted(
            {f"TAGARCHIVE_SESSION_{p.upper()}": path for p, path in config.signin.session_files
             if p in watch.platforms}.items())]
        for platform, target, _source in config.signin.variables:
            if platform in watch.platforms:
                lines.append(f"# watch {watch.name}: set {target} in cron's environment for "
                             f"{platform} sign-in (secrets are not written here)")
        argv = config.crawl_args(watch, {"TAGARCHIVE_TRIGGER": CRON})
        shell = " ".join([
            *env, "timeout", "-k", kill, f"{watch.timeout:g}s",
            *(shlex.quote(part) for part in [*command, *argv])])
        if cadence.jitter:
            # POSIX sh has no $RANDOM; two bytes of /dev/urandom spread the start instead
            shell = (f"sleep $(( $(od -An -N2 -tu2 /dev/urandom) % {int(cadence.jitter) + 1} ))"
                     f" && {shell}")
        # in a crontab line an unescaped % ends the command (cron feeds the rest to stdin)
        line = f"{when} {shell.replace('%', chr(92) + '%')}"
        lines.append(line if watch.enabled else f"# (disabled) {line}")
    return lines, warnings
