"""The development PKI's files shared by every process on one keys dir: ``state.json``
(changed only under an exclusive ``flock`` of ``state.lock``) and the published CRLs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from service.signing.errors import PkiError

__all__ = ["PublishedCrl", "StateFile", "write_atomic"]


class StateFile:
    """``state.json`` shared by every process on the keys dir.

    ``read()`` returns the current content, parsed again only when the file was replaced
    (its inode, mtime or size changed); treat it as read-only. Changes go through
    ``update()`` (or ``locked()`` + ``load()`` + ``write()``): an exclusive ``flock`` across
    processes and threads, a fresh read inside it, a unique temporary file and ``os.replace``.
    """

    def __init__(self, keys_dir: Path) -> None:
        self.path = keys_dir / "state.json"
        self._lock_path = keys_dir / "state.lock"
        self._cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    def read(self) -> dict[str, Any]:
        """The current state, shared between callers: do not change it. Raises PkiError."""
        try:
            stamp = _stamp(self.path.stat())
        except OSError as exc:
            raise PkiError(f"cannot read {self.path}: {exc}") from exc
        cached = self._cache
        if cached is not None and cached[0] == stamp:
            return cached[1]
        stamp, data = self._parse()
        self._cache = (stamp, data)
        return data

    def load(self) -> dict[str, Any]:
        """A private copy of the state as the file holds it now (to change). Raises PkiError."""
        return self._parse()[1]

    def _parse(self) -> tuple[tuple[int, int, int], dict[str, Any]]:
        try:
            with self.path.open("rb") as fh:
                stamp = _stamp(os.fstat(fh.fileno()))
                data: dict[str, Any] = json.loads(fh.read())
        except (OSError, ValueError) as exc:
            raise PkiError(f"cannot read {self.path}: {exc}") from exc
        return stamp, data

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the keys dir's state lock (blocks until every other holder is done)."""
        # Read-only is enough for flock, and works when another user created the file.
        fd = os.open(self._lock_path, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                # Released outright, not by the close alone: a process forked meanwhile (the
                # verification pool) holds a copy of this descriptor and with it the lock.
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write: the fresh state to change in place, written if the block succeeds."""
        with self.locked():
            state = self.load()
            yield state
            self.write(state)

    def write(self, state: dict[str, Any]) -> None:
        """Replace the file atomically (call with the lock held). Raises PkiError."""
        text = json.dumps(state, indent=1, ensure_ascii=False).encode()
        write_atomic(self.path, text)
        with contextlib.suppress(OSError):  # the caller may go on changing ``state``: cache a copy
            self._cache = (_stamp(self.path.stat()), json.loads(text))


class PublishedCrl:
    """A CRL file in the keys dir (``ca.crl``, ``root.crl``), read again only when replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[tuple[int, int, int], bytes, x509.CertificateRevocationList] | None = None

    def _current(self) -> tuple[bytes, x509.CertificateRevocationList] | None:
        try:
            stamp = _stamp(self.path.stat())
            cached = self._cache
            if cached is None or cached[0] != stamp:
                with self.path.open("rb") as fh:
                    stamp, der = _stamp(os.fstat(fh.fileno())), fh.read()
                cached = (stamp, der, x509.load_der_x509_crl(der))
                self._cache = cached
        except (OSError, ValueError):
            return None  # none published yet, or unreadable: sign a new one
        return cached[1], cached[2]

    def number(self) -> int:
        """The CRL number of the published CRL (0 when there is none)."""
        current = self._current()
        if current is None:
            return 0
        with contextlib.suppress(x509.ExtensionNotFound):
            return int(current[1].extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
        return 0

    def fresh(self, refresh: timedelta) -> bytes | None:
        """The published CRL's DER while it is younger than ``refresh``, else None."""
        current = self._current()
        if current is None:
            return None
        der, crl = current
        # last_update is set a minute in the past (clock skew of relying parties).
        age = datetime.now(UTC) - crl.last_update_utc - timedelta(minutes=1)
        return der if age < refresh else None

    def write(self, der: bytes) -> None:
        write_atomic(self.path, der)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a unique temporary file beside ``path``, then ``os.replace`` it.
    Keeps the mode of the file it replaces. Raises PkiError."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise PkiError(f"cannot write {path}: {exc}") from exc


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_mtime_ns, st.st_size
