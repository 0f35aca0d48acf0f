"""The raw archive kept private: owner-only files and folders, and encryption at rest to age keys.

The WARC files hold every response as the platform sent it, people's names and words included,
so they are the sensitive part of an output root (docs/privacy.md). Folders are created 0700 and
files 0600 whatever the umask (`make_private_dirs`, `create_private`); `tighten` brings an
existing archive to those modes. With recipients (age `age1…` public keys, or SSH public keys),
each finished WARC file is stored encrypted as `<name>.warc.gz.age` (`encrypt_bytes`), and
reading it back needs one of the matching identities (`load_identities`, `open_warc`). Only
public keys are ever named in a config or the environment; identity files stay with the user.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from storage.errors import StorageError
from storage.paths import ensure_inside_root

if TYPE_CHECKING:
    import pyrage

# Recipients for every ArchiveWriter that is given none: comma- or space-separated public keys.
# The scheduler sets it for its crawls from the config's `[archive] recipients`.
RECIPIENTS_ENV = "TAGARCHIVE_ARCHIVE_RECIPIENTS"
ENCRYPTED_SUFFIX = ".age"
FILE_MODE = 0o600
DIR_MODE = 0o700
_AGE_MAGIC = b"age-encryption.org/v1\n"
_AGE_SECRET = "AGE-SECRET-KEY-1"
_SSH_PRIVATE = b"-----BEGIN OPENSSH PRIVATE KEY-----"


class ArchiveKeyError(StorageError, ValueError):
    """A recipient or identity that is not a usable age/SSH key (a usage error, one line)."""


class EncryptedArchiveError(StorageError, OSError):
    """An encrypted WARC file that cannot be read: no identity given, or none that matches."""


def recipients_from_env(environ: dict[str, str] | None = None) -> list[str]:
    """The recipients named in $TAGARCHIVE_ARCHIVE_RECIPIENTS (none when unset or empty)."""
    text = (os.environ if environ is None else environ).get(RECIPIENTS_ENV, "")
    return [part for part in text.replace(",", " ").split() if part]


def parse_recipients(values: Iterable[str]) -> list[pyrage._Recipient]:
    """Public keys as pyrage recipients: `age1…` (X25519) or `ssh-ed25519 …`/`ssh-rsa …`."""
    import pyrage

    parsed: list[pyrage._Recipient] = []
    for value in values:
        text = value.strip()
        try:
            if text.startswith("ssh-"):
                parsed.append(pyrage.ssh.Recipient.from_str(text))
            else:
                parsed.append(pyrage.x25519.Recipient.from_str(text))
        except pyrage.RecipientError as exc:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise ArchiveKeyError(f"not an age recipient (age1… or ssh-… public key): "
                                  f"{shown!r}: {exc}") from None
    return parsed


def load_identities(path: str | Path) -> list[pyrage._Identity]:
    """The identities of an age identity file (`AGE-SECRET-KEY-1…` lines, `#` comments, as
    `age-keygen` writes it) or of an unencrypted OpenSSH private key."""
    import pyrage

    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ArchiveKeyError(f"--identity {path}: {exc.strerror or exc}") from None
    if data.lstrip().startswith(_SSH_PRIVATE):
        try:
            return [pyrage.ssh.Identity.from_buffer(data)]
        except pyrage.IdentityError as exc:
            raise ArchiveKeyError(f"--identity {path}: not a usable SSH key: {exc}") from None
    keys = [line.strip() for line in data.decode("utf-8", "replace").splitlines()
            if line.strip().startswith(_AGE_SECRET)]
    if not keys:
        raise ArchiveKeyError(f"--identity {path}: no AGE-SECRET-KEY-1 line (make one with "
                              "age-keygen)")
    try:
        return [pyrage.x25519.Identity.from_str(key) for key in keys]
    except pyrage.IdentityError as exc:
        raise ArchiveKeyError(f"--identity {path}: not a usable age key: {exc}") from None


def is_encrypted_name(name: str) -> bool:
    return name.endswith(ENCRYPTED_SUFFIX)


def encrypt_bytes(data: bytes, recipients: Sequence[pyrage._Recipient]) -> bytes:
    import pyrage

    return pyrage.encrypt(data, list(recipients))


def decrypt_bytes(data: bytes, identities: Sequence[pyrage._Identity] | None,
                  name: str) -> bytes:
    """The plaintext of one encrypted file; EncryptedArchiveError (one line) when it cannot be
    had."""
    import pyrage

    if not identities:
        raise EncryptedArchiveError(f"{name} is encrypted: pass --identity FILE (the age "
                                    "identity of one of its recipients)")
    if not data.startswith(_AGE_MAGIC):
        raise EncryptedArchiveError(f"{name}: not an age-encrypted file")
    try:
        return pyrage.decrypt(data, list(identities))
    except pyrage.DecryptError as exc:
        raise EncryptedArchiveError(f"{name}: cannot decrypt with the given identity: "
                                    f"{exc}") from None


def open_warc(backend: Any, root: Any, path: str,
              identities: Sequence[pyrage._Identity] | None = None) -> BinaryIO:
    """A WARC file the back-end listed, opened for reading; an encrypted one is decrypted in
    memory (its plaintext never touches the disk)."""
    if not is_encrypted_name(path):
        return backend.open_input(root, path)  # type: ignore[no-any-return]
    with backend.open_input(root, path) as handle:
        data = handle.read()
    return io.BytesIO(decrypt_bytes(data, identities, Path(path).name))


def check_readable(backend: Any, root: Any, paths: Sequence[str],
                   identities: Sequence[pyrage._Identity] | None) -> None:
    """Before a command reads many files: EncryptedArchiveError when some are encrypted and no
    identity is given, or when the first of them does not open with the given ones."""
    encrypted = [p for p in paths if is_encrypted_name(p)]
    if not encrypted:
        return
    if not identities:
        raise EncryptedArchiveError(f"{len(encrypted)} archive file(s) are encrypted "
                                    f"({Path(encrypted[0]).name}, …): pass --identity FILE "
                                    "(the age identity of one of their recipients)")
    open_warc(backend, root, encrypted[0], identities).close()


def make_private_dirs(root: Path, directory: Path) -> None:
    """Create `directory` (inside `root`) and each missing parent below `root`, each 0700."""
    root.mkdir(parents=True, exist_ok=True)  # the output root: not ours to restrict
    missing = []
    current = directory
    while current != root and not current.is_dir():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another writer made it first
            continue
        os.chmod(path, DIR_MODE)  # mkdir's mode is masked by the umask; this is not


def create_private(path: Path) -> int:
    """A new file opened for writing, 0600 whatever the umask; FileExistsError if it exists."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new 0600 file and fsync it."""
    with os.fdopen(create_private(path), "wb") as out:
        view = memoryview(data)
        while view:
            view = view[out.write(view):]
        out.flush()
        os.fsync(out.fileno())


@dataclass
class TightenReport:
    """What `tighten` changed: folders and files whose modes gave access beyond the owner."""

    directories: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def tighten(root: Path, archive: Path, dry_run: bool = False) -> TightenReport:
    """Take group and other permissions away from every folder and file under `archive` (itself
    included): 0755 becomes 0700, 0644 becomes 0600. A symbolic link out of the root is refused
    (UnsafePathError) before anything changes; one inside it is left as it is."""
    report = TightenReport()
    if not os.path.lexists(archive):
        return report
    ensure_inside_root(root, archive)
    entries: list[tuple[Path, bool]] = [(archive, True)]
    for current, dirs, names in os.walk(archive):
        entries += [(Path(current, d), True) for d in sorted(dirs)]
        entries += [(Path(current, n), False) for n in sorted(names)]
    for path, _is_dir in entries:
        ensure_inside_root(root, path)
    for path, is_dir in entries:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            continue  # ensure_inside_root let it through: it points inside; never chmod a link
        if stat.S_IMODE(mode) & 0o077:  # group or others may read, write or enter it
            (report.directories if is_dir else report.files).append(path)
            if not dry_run:
                os.chmod(path, stat.S_IMODE(mode) & 0o700)
    return report


def encrypt_file(path: Path, recipients: Sequence[pyrage._Recipient]) -> Path:
    """Replace a published plaintext WARC file by `<path>.age` (written under a hidden temp name,
    fsynced, renamed), then delete the plaintext; returns the new file. Rows that name the old
    path still find it: readers look for the `.age` file when the plain one is gone."""
    final = path.with_name(path.name + ENCRYPTED_SUFFIX)
    tmp = path.with_name(f".{final.name}.tmp")
    write_private(tmp, encrypt_bytes(path.read_bytes(), recipients))
    os.replace(tmp, final)
    path.unlink()
    return final
