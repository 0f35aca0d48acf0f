"""The project's pseudonymisation key: what makes an author's hash stable within one archive and
unlinkable across archives (docs/privacy.md).

Taken from, in order: `TAGARCHIVE_PSEUDONYM_KEY` (the key itself), a key file the user names,
or `<root>/.tagarchive/pseudonym.key`, created on first use with 32 random bytes, owner-only.
The key never reaches logs, Parquet or archives; `key_id` (a short digest) says which key a run
used without revealing it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.errors import StorageError
from storage.paths import state_path

KEY_ENV = "TAGARCHIVE_PSEUDONYM_KEY"
KEY_FILE = "pseudonym.key"
MIN_KEY_BYTES = 16


class PseudonymKeyError(StorageError):
    """The key cannot be read or made (a short key, an unreadable file)."""


@dataclass(frozen=True)
class ProjectKey:
    """The key's bytes, where it came from (never the key itself), and its public id."""

    secret: bytes
    origin: str

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"tagarchive key id\0" + self.secret).hexdigest()[:12]

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"ProjectKey(origin={self.origin!r}, key_id={self.key_id!r})"


def _checked(secret: bytes, origin: str) -> ProjectKey:
    if len(secret) < MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"pseudonymisation key from {origin} is {len(secret)} bytes; at least "
            f"{MIN_KEY_BYTES} are needed (make one with: openssl rand -hex 32)")
    return ProjectKey(secret, origin)


def project_key(state_root: str | Path, *, key_file: str | Path | None = None,
                environ: Mapping[str, str] | None = None) -> ProjectKey:
    """The key for an archive whose local state directory is under `state_root` (the root
    itself, or the local state root of an S3 archive: storage backend `state_root`)."""
    env = os.environ if environ is None else environ
    given = env.get(KEY_ENV, "").strip()
    if given:
        return _checked(given.encode(), f"${KEY_ENV}")
    if key_file is not None:
        try:
            return _checked(Path(key_file).read_bytes().strip(), f"key file {key_file}")
        except OSError as exc:
            raise PseudonymKeyError(f"cannot read key file {key_file}: {exc.strerror}") from None
    return _project_file(state_root)


def _project_file(state_root: str | Path) -> ProjectKey:
    path = state_path(state_root, KEY_FILE)
    try:
        return _checked(path.read_bytes().strip(), f"{path}")
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise PseudonymKeyError(f"cannot read {path}: {exc.strerror}") from None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    temp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key + b"\n")
            out.flush()
            os.fsync(out.fileno())
        # link() publishes the whole file or fails if another process got there first: two
        # crawls starting at once both end up with the one key written first, never half a key
        os.link(temp, path)
    except FileExistsError:
        return _checked(path.read_bytes().strip(), f"{path}")
    except OSError as exc:
        raise PseudonymKeyError(f"cannot create {path}: {exc.strerror}") from None
    finally:
        temp.unlink(missing_ok=True)
    return ProjectKey(key, f"{path} (created)")


def describe(key: ProjectKey) -> dict[str, Any]:
    """What a run records about its key: where it came from and its id, never the key."""
    return {"origin": key.origin, "key_id": key.key_id}
