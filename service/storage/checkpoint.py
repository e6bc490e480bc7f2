"""SQLite's WAL checkpoints, moved off the requests: a thread with a connection of its own.

In WAL mode a commit only appends to the ``-wal`` file; every 1,000 pages SQLite copies
the WAL back into the database file (a checkpoint) and syncs it to disk, on the
connection whose commit crossed the mark. The service has one connection, shared by
every request: that request waited for the copy and the sync, and with uploads writing
megabytes of blobs the sync queued behind their data (up to 2 s at the 99th percentile).

Here the service's connection checkpoints only as a safety net, when the WAL has grown
past ``SAFETY_PAGES``, and ``Checkpointer`` runs a PASSIVE checkpoint every
``interval_s`` from its own thread and connection: it copies what no reader still needs
without taking the write lock, so requests go on meanwhile, and the next transaction
starts the WAL over once everything was copied.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from urllib.parse import quote

__all__ = ["SAFETY_PAGES", "Checkpointer"]

log = logging.getLogger(__name__)

# wal_autocheckpoint of the service's own connection: only if the thread falls behind.
SAFETY_PAGES = 16_000  # about 64 MB of WAL


class Checkpointer:
    """A daemon thread checkpointing the SQLite database at ``path`` every ``interval_s``."""

    def __init__(self, path: str, interval_s: float = 0.5) -> None:
        self._path, self._interval_s = path, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self._stop.wait(self._interval_s):
            try:
                if conn is None:
                    # mode=rw: never create the file (the service's connection does, in WAL mode).
                    conn = sqlite3.connect(f"file:{quote(self._path)}?mode=rw", uri=True, timeout=0,
                                           isolation_level=None)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:  # e.g. the file is not created yet; the safety net still holds
                log.debug("background checkpoint of %s skipped: %s", self._path, exc)
                if conn is not None:
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()
