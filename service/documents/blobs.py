"""Content-addressed file store: SHA-256 computed on the way in, atomic rename.

The pass that hashes an upload also counts its signature markers (``service.pdfscan``);
the store remembers the scans of the files it took in lately, so that verifying a
document just uploaded needs no second read of its bytes.

Layout: ``<root>/ab/<sha256>``, 256 folders. With a second level (``ab/cd/``, 65,536
folders) a young store made a new folder for almost every upload, an inode as costly
as the file's own; a store of that layout is moved to this one when it is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from service.errors import ServiceError
from service.pdfscan import Scan, Scanner

__all__ = ["BlobStore", "BlobWriter", "TooLargeError", "blob_path", "upgrade_layout"]

_FLUSH_AT = 1024 * 1024
log = logging.getLogger("docexchange.blobs")
ABANDONED_AFTER = timedelta(days=1)  # a scratch file not written for this long: its process is gone
_SCANS_KEPT = 4096  # recent uploads: a document is usually sent soon after it is uploaded


class TooLargeError(ServiceError):
    """The upload is over the configured size limit."""

    status = 413
    code = "too-large"
    title = "File too large"


def blob_path(root: Path, sha256: str) -> Path:
    """Where the file of ``sha256`` is. A file an older version still wrote in the two-level
    layout after the store was moved (an instance of the earlier release left running during
    an upgrade) is moved into place when first asked for: the LAYOUT note keeps the store from
    being walked again, so this is the only moment it can be found."""
    path = root / sha256[:2] / sha256
    if not path.exists():
        legacy = root / sha256[:2] / sha256[2:4] / sha256
        with contextlib.suppress(FileNotFoundError):  # not there, or another process moved it
            os.replace(legacy, path)
    return path


_LAYOUT = "LAYOUT"  # a file in the root: the layout the store is in
_LAYOUT_NOW = "1\n"  # one level of folders
_HEX = frozenset("0123456789abcdef")


def _prefix_folders(parent: Path) -> list[Path]:
    """The folders of ``parent`` named by two hex digits (none if it does not exist)."""
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if len(p.name) == 2 and _HEX.issuperset(p.name) and p.is_dir())


def upgrade_layout(root: Path) -> int:
    """Move the files of the two-level layout (``ab/cd/<sha>``) to ``ab/<sha>``; returns how
    many moved. Safe to run from several processes at once, and again after a crash."""
    marker = root / _LAYOUT
    if marker.exists():
        return 0
    moved = 0
    for top in _prefix_folders(root):
        for sub in _prefix_folders(top):
            for file in sub.iterdir():
                with contextlib.suppress(FileNotFoundError):  # another process moved it
                    os.replace(file, top / file.name)
                    moved += 1
            with contextlib.suppress(OSError):
                sub.rmdir()
    root.mkdir(parents=True, exist_ok=True)
    scratch = root / f"{_LAYOUT}.{secrets.token_hex(4)}"
    scratch.write_text(_LAYOUT_NOW)
    os.replace(scratch, marker)
    return moved


class BlobStore:
    """Files named by their SHA-256 under ``root``; identical bytes stored once."""

    def __init__(self, root: Path) -> None:
        # Absolute: paths handed out must not depend on the working directory.
        self.root = root.resolve()
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        upgrade_layout(self.root)
        self._scans: OrderedDict[str, Scan] = OrderedDict()

    def path(self, sha256: str) -> Path:
        return blob_path(self.root, sha256)

    def scan_of(self, sha256: str) -> Scan | None:
        """The scan of a file this process stored lately, if it still remembers it."""
        return self._scans.get(sha256)

    def _remember(self, scan: Scan) -> None:
        self._scans[scan.sha256] = scan
        self._scans.move_to_end(scan.sha256)
        if len(self._scans) > _SCANS_KEPT:
            self._scans.popitem(last=False)

    def writer(self, limit: int) -> BlobWriter:
        return BlobWriter(self, limit)

    def scratch(self) -> Path:
        """A fresh temporary path inside the store (same filesystem: renames are atomic)."""
        return self.root / "tmp" / secrets.token_hex(16)

    @contextlib.contextmanager
    def scratch_file(self) -> Iterator[Path]:
        """A ``scratch`` path that is gone when the block ends: adopted into the store,
        or removed, whatever the block raised."""
        path = self.scratch()
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    async def adopt(self, path: Path, sha256: str) -> Path:
        """Move a finished file (from ``scratch``) to its content address."""
        return await asyncio.to_thread(_move_into, path, self.path(sha256))

    async def sweep_scratch(self, pattern: str, older_than_s: float) -> int:
        """Remove the scratch files named like ``pattern`` (fnmatch) that were not written
        for ``older_than_s`` seconds; returns how many. Only the caller knows which of its
        scratch files are abandoned, hence the pattern: a running upload is never touched."""
        return await asyncio.to_thread(_sweep, self.root / "tmp", pattern, time.time() - older_than_s)

    async def sweep_abandoned(self) -> int:
        """Remove the scratch files nobody wrote to for a day: what a killed process left.
        A live upload writes every MiB, and a refused or cancelled one removes its own file."""
        return await self.sweep_scratch("*", ABANDONED_AFTER.total_seconds())


class BlobWriter:
    """Receives chunks, hashes and writes them off the event loop, in 1 MiB steps.

    Memory stays bounded whatever the file size. ``commit`` moves the file into
    the store; ``discard`` removes every trace of it.

    Every filesystem call that creates something (the temporary file, the folders of
    its content address) runs on the writer's thread: creating an inode costs 0.1 to
    1 ms of kernel time on an ordinary ext4 volume, time the event loop would not
    serve anyone. What is left for the loop is one rename.
    """

    def __init__(self, store: BlobStore, limit: int) -> None:
        self._store, self._limit = store, limit
        self._tmp = store.root / "tmp" / secrets.token_hex(16)
        self._file: BinaryIO | None = None  # opened by the first write, on the thread
        self._committed = self._discarded = False
        # A cancelled request may discard while a write it gave up waiting for still runs:
        # the file is then not created after its removal.
        self._opening = threading.Lock()
        self._scanner = Scanner()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.size = 0
        self.sha256 = ""
        self.scan: Scan | None = None
        self.head = b""
        self.tail = b""

    @property
    def tmp_path(self) -> Path:
        """Where the bytes are until ``commit`` (or ``discard``)."""
        return self._tmp

    async def write(self, chunk: bytes) -> None:
        """Raises TooLargeError once the limit is passed."""
        self.size += len(chunk)
        if self.size > self._limit:
            raise TooLargeError(f"the file is larger than the limit of {self._limit // (1024 * 1024)} MB")
        if len(self.head) < 1024:
            self.head += chunk[: 1024 - len(self.head)]
        self.tail = (self.tail + chunk[-2048:])[-2048:]
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= _FLUSH_AT:
            await self._flush()

    async def _flush(self) -> None:
        chunks, self._pending, self._pending_size = self._pending, [], 0
        if chunks:
            await asyncio.to_thread(self._write_sync, chunks)

    def _write_sync(self, chunks: list[bytes]) -> None:
        # Chunk by chunk: joining them first would copy every byte once more.
        for chunk in chunks:
            self._scanner.update(chunk)
        self._opened().writelines(chunks)

    def _opened(self) -> BinaryIO:
        with self._opening:
            if self._discarded:
                raise OSError(f"{self._tmp.name} was discarded")
            if self._file is None:
                self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in finish/discard
            return self._file

    async def finish(self) -> str:
        """Flush everything to disk; returns the SHA-256 (the file is still temporary)."""
        chunks, self._pending, self._pending_size = self._pending, [], 0
        # One hand-off: the rest, the sync and the folders of the content address.
        self.scan = await asyncio.to_thread(self._finish_sync, chunks)
        return self.scan.sha256

    def _finish_sync(self, chunks: list[bytes]) -> Scan:
        self._write_sync(chunks)
        file = self._opened()
        file.flush()
        os.fsync(file.fileno())
        file.close()
        scan = self._scanner.result()
        # Ready for commit (usually there already; an upload refused later leaves at most
        # two empty folders, never a file).
        self._store.path(scan.sha256).parent.mkdir(parents=True, exist_ok=True)
        return scan

    def commit(self, sha256: str) -> Path:
        """Move the finished file to its content address (atomically).

        On the event loop: ``finish`` made the folders, so this is one rename, cheaper
        than a thread hand-off."""
        final = _move_into(self._tmp, self._store.path(sha256))
        self._committed = True
        if self.scan is not None and self.scan.sha256 == sha256:
            self._store._remember(self.scan)
        return final

    def discard(self) -> None:
        """Remove the temporary file; after ``commit`` there is nothing left to remove."""
        with self._opening:
            self._discarded = True
            if self._file is not None and not self._file.closed:
                self._file.close()
            if not self._committed:
                self._tmp.unlink(missing_ok=True)


def _sweep(folder: Path, pattern: str, cutoff: float) -> int:
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                if (entry.is_file(follow_symlinks=False) and fnmatch.fnmatchcase(entry.name, pattern)
                        and entry.stat(follow_symlinks=False).st_mtime < cutoff):
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:  # another process swept it first
                continue
            except OSError as exc:  # not ours to remove: left, and said (start-up must not stop here)
                log.warning("scratch file left in place", extra={"event": f"{entry.path}: {exc}"})
    return removed


def _move_into(tmp: Path, final: Path) -> Path:
    # Identical bytes stored before are replaced by themselves: no look first.
    try:
        os.replace(tmp, final)
    except FileNotFoundError:  # the first file under this prefix: its folders come first
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
    return final
