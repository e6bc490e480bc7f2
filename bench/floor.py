"""The floor of part (a): what keeping an upload and a send durably costs, and nothing more.

A FastAPI app in the same kind of uvicorn process as the bare baseline, taking the same two
requests the service takes. It does the work no correct implementation can skip, the way
the service does it, and none of the service's own:

* ``POST /upload``: parse the multipart form as it streams in (python-multipart, as the
  service), hash the PDF (SHA-256) and write it to a scratch file in 1 MiB steps on a thread,
  ``fsync`` it there, rename it to its content address, then one SQLite transaction: the
  document row and one hash-chained audit row;
* ``POST /send/{id}``: parse the JSON, then one transaction: read the document, one delivery
  row and one outbox row per recipient, one audit row.

SQLite as the service uses it (WAL, ``synchronous=NORMAL``, statements on the event loop).
No authentication, validation, routing policy, idempotency, verification, logging or metrics:
the ratio of the floor to the bare server is the best any service keeping these documents
safely could reach, before it does anything of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

__all__ = ["create_floor_app"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (id TEXT PRIMARY KEY, sha256 TEXT, size INTEGER, metadata TEXT);
CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, document_id TEXT, recipient TEXT, status TEXT);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, kind TEXT, delivery_id TEXT);
CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, prev_hash TEXT, hash TEXT, action TEXT, data TEXT);
"""


_STEP = 1024 * 1024  # hashed and written on a thread in steps of this size, as the service does


class _Form:
    """One multipart body: the text fields kept, the file part's chunks held for ``flush``."""

    def __init__(self, boundary: bytes, scratch: Path) -> None:
        self.fields: dict[str, bytes] = {}
        self.sha = hashlib.sha256()
        self.size = 0
        self.scratch = scratch
        self.file = open(scratch, "wb")  # noqa: SIM115 - closed by the caller
        self._headers = b""
        self._text: list[bytes] = []
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_header_value": self._header, "on_part_data": self._data,
            "on_part_end": self._end})

    def _begin(self) -> None:
        self._headers, self._text = b"", []

    def _header(self, data: bytes, start: int, end: int) -> None:
        self._headers += data[start:end]

    def _is_file(self) -> bool:
        return b"filename=" in self._headers

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file():
            self.pending.append(data[start:end])
            self.pending_size += end - start
            self.size += end - start
        else:
            self._text.append(data[start:end])

    async def flush(self, last: bool = False) -> None:
        chunks, self.pending, self.pending_size = self.pending, [], 0
        await asyncio.to_thread(self._write, chunks, last)

    def _write(self, chunks: list[bytes], last: bool) -> None:
        for chunk in chunks:
            self.sha.update(chunk)
            self.file.write(chunk)
        if last:
            self.file.flush()
            os.fsync(self.file.fileno())

    def _end(self) -> None:
        if not self._is_file():
            name = self._headers.partition(b'name="')[2].partition(b'"')[0]
            self.fields[name.decode()] = b"".join(self._text)


def create_floor_app(store: Path) -> FastAPI:
    (store / "tmp").mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(store / "floor.db", isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    last_hash = ["0" * 64]
    app = FastAPI()

    def audit(action: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, sort_keys=True)
        digest = hashlib.sha256(f"{last_hash[0]}|{action}|{text}".encode()).hexdigest()
        db.execute("INSERT INTO audit (prev_hash, hash, action, data) VALUES (?, ?, ?, ?)",
                   (last_hash[0], digest, action, text))
        last_hash[0] = digest

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/upload", status_code=201)
    async def upload(request: Request) -> dict[str, Any]:
        _, params = parse_options_header(request.headers.get("content-type", ""))
        form = _Form(params[b"boundary"], store / "tmp" / uuid.uuid4().hex)
        try:
            async for chunk in request.stream():
                form.parser.write(chunk)
                if form.pending_size >= _STEP:
                    await form.flush()
            form.parser.finalize()
            await form.flush(last=True)
        finally:
            form.file.close()
        sha = form.sha.hexdigest()
        final = store / sha[:2] / sha
        final.parent.mkdir(exist_ok=True)
        os.replace(form.scratch, final)
        meta = json.loads(form.fields["metadata"])
        doc_id = uuid.uuid4().hex
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO documents VALUES (?, ?, ?, ?)", (doc_id, sha, form.size, json.dumps(meta)))
        audit("document.registered", {"id": doc_id, "sha256": sha, "size": form.size})
        db.execute("COMMIT")
        return {"id": doc_id, "sha256": sha, "size": form.size}

    @app.post("/send/{doc_id}")
    async def send(doc_id: str, body: dict[str, Any]) -> dict[str, Any]:
        recipients = [str(r) for r in body.get("recipients", [])]
        db.execute("BEGIN IMMEDIATE")
        if db.execute("SELECT 1 FROM documents WHERE id = ?", (doc_id,)).fetchone() is None:
            db.execute("ROLLBACK")
            raise HTTPException(404)
        deliveries = [(uuid.uuid4().hex, doc_id, r, "01") for r in recipients]
        db.executemany("INSERT INTO deliveries VALUES (?, ?, ?, ?)", deliveries)
        db.executemany("INSERT INTO outbox (kind, delivery_id) VALUES ('arrival', ?)", [(d[0],) for d in deliveries])
        audit("document.sent", {"id": doc_id, "recipients": recipients})
        db.execute("COMMIT")
        return {"document_id": doc_id, "created": len(deliveries), "already_sent": 0}

    return app
