"""`tagarchive archive`: the raw WARC archive kept private and kept only as long as needed.

`prune` applies retention (by age and/or size, or the config's `[archive] max_age`), `secure`
takes group and other permissions away from an existing archive and, given age recipients,
encrypts its plain files; `cat` writes one file (decrypted with `--identity`) or one record's
payload, for any WARC tool. docs/archive.md and docs/privacy.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from crawler.extensions.runrecord import EXIT_OK

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.I)
_AGE = re.compile(r"^\s*(\d+)\s*d?\s*$", re.I)


def parse_size(text: str) -> int:
    """'500M', '10G', '1.5T', '2048' (bytes) -> bytes (binary units)."""
    from crawler.cli.errors import UsageError

    match = _SIZE.match(text)
    if match is None:
        raise UsageError(f"--max-size: not a size: {text!r} (e.g. 500M, 10G)")
    power = " KMGT".index(match.group(2).upper() or " ")
    return int(float(match.group(1)) * 1024**power)


def parse_age(text: str) -> int:
    from crawler.cli.errors import UsageError

    match = _AGE.match(text)
    if match is None:
        raise UsageError(f"--max-age: not a number of days: {text!r} (e.g. 90d)")
    return int(match.group(1))


def register(sub: Any) -> None:
    archive = sub.add_parser("archive", help="the raw WARC archive: retention, privacy, reading")
    actions = archive.add_subparsers(dest="archive_command", required=True)
    prune = actions.add_parser("prune", help="delete the oldest WARC files beyond an age/size")
    _root_options(prune)
    prune.add_argument("--max-age", help="keep this many days, e.g. 90d (default: the "
                                         "config's [archive] max_age)")
    prune.add_argument("--max-size", help="keep at most this much, e.g. 20G")
    prune.add_argument("--dry-run", action="store_true", help="only say what would go")
    prune.set_defaults(func=cmd_prune)
    secure = actions.add_parser("secure", help="owner-only permissions on an existing archive; "
                                               "with recipients, encrypt its plain files")
    _root_options(secure)
    secure.add_argument("--recipient", action="append", default=[], metavar="KEY",
                        help="an age (age1…) or SSH public key to encrypt to (repeatable; "
                             "default: the config's [archive] recipients)")
    secure.add_argument("--dry-run", action="store_true", help="only say what would change")
    secure.set_defaults(func=cmd_secure)
    cat = actions.add_parser("cat", help="write one archived WARC file, decrypted, to stdout")
    cat.add_argument("--root", "--out", default="data", help="output root (default ./data)")
    cat.add_argument("file", help="the file as rows name it (archive_file), e.g. "
                                  "archive/platform=tiktok/date=2026-11-23/<run>-0001.warc.gz")
    cat.add_argument("--record", metavar="ID", help="only this record's payload "
                                                    "(archive_record, urn:uuid:…)")
    cat.add_argument("--identity", metavar="FILE", help="age identity file to decrypt with")
    cat.add_argument("--output", "-o", metavar="PATH", help="write here (created 0600), not "
                                                            "to stdout")
    cat.set_defaults(func=cmd_cat)


def identities_for(root: str, paths: list[str], identity: str | None) -> list[Any] | None:
    """The identities of `--identity FILE`, checked against the files a command will read:
    encrypted files without it are a usage error (exit 2), with one that does not open them an
    environment error (exit 3), each one line."""
    from crawler.cli.errors import EnvironmentProblem, UsageError
    from storage.archivekeys import (
        ArchiveKeyError,
        EncryptedArchiveError,
        check_readable,
        load_identities,
    )
    from storage.backends import backend_for

    try:
        identities = load_identities(identity) if identity else None
    except ArchiveKeyError as exc:
        raise UsageError(str(exc)) from None
    try:
        check_readable(backend_for(root), root, paths, identities)
    except EncryptedArchiveError as exc:
        raise (EnvironmentProblem if identities else UsageError)(str(exc)) from None
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read the archive: {exc.strerror or exc}") from None
    return identities


def _root_options(parser: Any) -> None:
    parser.add_argument("--root", "--out", default=None,
                        help="output root, a directory or s3://bucket/prefix (default: the "
                             "config's out, else ./data)")
    parser.add_argument("--config", metavar="FILE", help="take [archive] settings (and the "
                                                         "root) from this config")


def _settings(args: argparse.Namespace) -> Any:
    """The config's [archive] settings (defaults without --config); sets args.root."""
    from crawler.cli.errors import UsageError
    from crawler.services.watchmodel import ArchiveSettings
    from crawler.services.watchvalues import ConfigError

    if not args.config:
        args.root = args.root or "data"
        return ArchiveSettings()
    from crawler.services.watchconfig import load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    args.root = args.root or str(config.out)
    return config.archive


def _check_root(root: str) -> None:
    from crawler.cli.errors import EnvironmentProblem, UsageError
    from storage.backends import backend_for
    from storage.fs import BadRootError, S3Error

    try:
        backend_for(root).check(root)  # S3: the bucket answers; local: nothing
    except BadRootError as exc:
        raise UsageError(str(exc)) from None
    except S3Error as exc:
        raise EnvironmentProblem(str(exc)) from None


def cmd_prune(args: argparse.Namespace) -> int:
    from crawler.cli.errors import EnvironmentProblem, UsageError
    from storage.archive import prune
    from storage.errors import StorageError

    settings = _settings(args)
    max_age = parse_age(args.max_age) if args.max_age else settings.max_age_days
    if max_age is None and args.max_size is None:
        raise UsageError("archive prune needs --max-age, --max-size or both (or a config "
                         "with [archive] max_age)")
    _check_root(args.root)
    try:
        report = prune(args.root, max_age_days=max_age,
                       max_bytes=parse_size(args.max_size) if args.max_size else None,
                       dry_run=args.dry_run)
    except (StorageError, OSError) as exc:
        # S3: files deleted before it stay deleted; a re-run finishes the rest. A symlinked
        # archive/ folder leading out of the root: refused before anything is deleted.
        raise EnvironmentProblem(str(exc)) from None
    verb = "would remove" if report.dry_run else "removed"
    print(f"{verb} {len(report.removed)} WARC files ({report.removed_bytes:,} bytes); "
          f"kept {report.kept_files} ({report.kept_bytes:,} bytes)")
    for path in report.removed:
        print(f"  {path}")
    if report.stale_temps:
        print(f"{verb} {len(report.stale_temps)} unfinished .warc.gz.tmp file(s) of killed crawls")
        for path in report.stale_temps:
            print(f"  {path}")
    return EXIT_OK


def cmd_secure(args: argparse.Namespace) -> int:
    from crawler.cli.errors import EnvironmentProblem, UsageError
    from storage.archive import ARCHIVE_DIR, published_files
    from storage.archivekeys import encrypt_file, is_encrypted_name, parse_recipients, tighten
    from storage.backends import backend_for
    from storage.errors import StorageError

    settings = _settings(args)
    try:
        recipients = parse_recipients(args.recipient or settings.recipients)
    except StorageError as exc:
        raise UsageError(str(exc)) from None
    backend = backend_for(args.root)
    if backend.remote:
        raise UsageError("archive secure works on a local root (on S3, access is the bucket "
                         "policy's: docs/privacy.md)")
    root = Path(backend.location(args.root)).absolute()
    verb = "would " if args.dry_run else ""
    try:
        plain = [Path(p) for _d, p, _s in published_files(root) if not is_encrypted_name(p.name)]
        report = tighten(root, root / ARCHIVE_DIR, dry_run=args.dry_run)
        encrypted = 0
        for path in plain if recipients else []:
            if not args.dry_run:
                encrypt_file(path, recipients)
            encrypted += 1
    except (StorageError, OSError) as exc:
        raise EnvironmentProblem(str(exc)) from None
    print(f"{verb}restrict {len(report.directories)} folders to 0700 and {len(report.files)} "
          f"files to 0600 under {root / ARCHIVE_DIR}")
    if recipients:
        print(f"{verb}encrypt {encrypted} plain WARC files to {len(recipients)} recipient(s)")
    elif plain:
        print(f"{len(plain)} WARC files are not encrypted (give --recipient, or [archive] "
              "recipients in the config, to encrypt them)")
    return EXIT_OK


def cmd_cat(args: argparse.Namespace) -> int:
    from crawler.cli.errors import EnvironmentProblem, UsageError
    from storage.archivekeys import (
        ArchiveKeyError,
        EncryptedArchiveError,
        load_identities,
        write_private,
    )
    from storage.archivepick import read_archive_file, record_payload
    from storage.errors import StorageError

    _check_root(args.root)
    try:
        identities = load_identities(args.identity) if args.identity else None
    except ArchiveKeyError as exc:
        raise UsageError(str(exc)) from None
    try:
        data = read_archive_file(args.root, args.file, identities)
        if args.record:
            data = record_payload(data, args.record)
    except EncryptedArchiveError as exc:
        raise (EnvironmentProblem if identities else UsageError)(str(exc)) from None
    except (StorageError, OSError, KeyError) as exc:
        raise EnvironmentProblem(str(exc).strip("'\"")) from None
    if args.output:
        try:
            write_private(Path(args.output), data)
        except OSError as exc:
            raise EnvironmentProblem(f"{args.output}: {exc.strerror or exc}") from None
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return EXIT_OK
