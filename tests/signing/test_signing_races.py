"""Signatures racing on one document or one signing session: one lands, the others are
told so (409), and no file is left behind that nothing refers to."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import update
from sqlmodel import col

from service.documents.models import ExternalSigningSession
from service.signing import DevelopmentPki
from service.storage.db import is_sqlite
from service.storage.types import utcnow
from tests.conftest import TEST_PASSPHRASE
from tests.factories.pdf import metadata, upload_form

BOX = [330, 120, 500, 200]
RACERS = 5


def _token(dev_keys: Path) -> tuple[Any, list[str]]:
    """A signer's USB token: a key and its certificate chain (base64 DER)."""
    pki = DevelopmentPki.open(dev_keys, TEST_PASSPHRASE.encode())
    issued = pki.issue_personal_cert(f"token-{uuid.uuid4().hex[:12]}", "Người xa1_signer", "token@example.vn")
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), TEST_PASSPHRASE.encode())
    chain = [x509.load_pem_x509_certificate(p.read_bytes()) for p in (issued.cert_path, *issued.chain_paths)]
    issued.key_path.unlink()
    return key, [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]


async def _upload(client, world) -> dict[str, Any]:
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata()))
    assert r.status_code == 201, r.text
    return r.json()


async def _prepare(client, world, doc_id: str, chain: list[str]) -> dict[str, Any]:
    r = await client.post(f"/api/v1/documents/{doc_id}/signatures/external", headers=world.auth("xa1_signer"),
                          json={"box": BOX, "certificate_chain": chain})
    assert r.status_code == 201, r.text
    return r.json()


def _complete_body(key: Any, prepared: dict[str, Any], chain: list[str]) -> dict[str, Any]:
    value = key.sign(base64.b64decode(prepared["to_be_signed"]), padding.PKCS1v15(), hashes.SHA256())
    return {"signature_value": base64.b64encode(value).decode(), "certificate_chain": chain}


def _stored(settings) -> set[str]:
    """The content addresses in the blob store (not its scratch folder or layout marker)."""
    root = settings.blob_dir
    return {p.name for p in root.glob("*/*") if p.is_file() and p.parent.name != "tmp"}


def _prepared_files(settings) -> set[str]:
    return {p.name for p in (settings.blob_dir / "tmp").glob(".*.prepared")}


def _scratch_files(settings) -> set[str]:
    return {p.name for p in (settings.blob_dir / "tmp").iterdir()}


def _assert_one_won(responses) -> None:
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (len(responses) - 1), [r.text for r in responses]
    for r in responses:
        if r.status_code == 409:
            assert r.headers["content-type"].startswith("application/problem+json")


async def test_parallel_completions_of_one_session_sign_once(client, world, dev_keys, settings) -> None:
    key, chain = _token(dev_keys)
    doc = await _upload(client, world)
    prepared = await _prepare(client, world, doc["id"], chain)
    body = _complete_body(key, prepared, chain)
    url = f"/api/v1/signing-sessions/{prepared['session_id']}/complete"

    responses = await asyncio.gather(*(client.post(url, headers=world.auth("xa1_signer"), json=body)
                                       for _ in range(RACERS)))

    _assert_one_won(responses)
    for r in responses:
        if r.status_code == 409:
            assert r.json()["detail"] == "this signing session was already completed"
    sigs = (await client.get(f"/api/v1/documents/{doc['id']}/signatures", headers=world.auth("xa1"))).json()
    assert [s["kind"] for s in sigs["signatures"]] == ["personal"]
    assert _prepared_files(settings) == set()


async def test_parallel_personal_signatures_leave_no_unreferenced_file(client, world, settings) -> None:
    doc = await _upload(client, world)
    before = _stored(settings)
    url = f"/api/v1/documents/{doc['id']}/signatures/personal"

    # A field each: signed one after another, every one of them would be accepted.
    responses = await asyncio.gather(*(client.post(url, headers=world.auth("xa1_signer"),
                                                   json={"box": BOX, "field_name": f"Sig-Racer-{i}"})
                                       for i in range(RACERS)))

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, [r.json() for r in responses]
    # SQLite runs one transaction at a time, so there the racers sign one after another;
    # where they really overlap (PostgreSQL) the losers are refused with a clear reason.
    if not is_sqlite(settings.effective_database_url):
        _assert_one_won(responses)
    for r in responses:
        if r.status_code == 409:
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["detail"] == "the document changed while it was being signed; sign again"
    sigs = (await client.get(f"/api/v1/documents/{doc['id']}/signatures", headers=world.auth("xa1"))).json()
    assert len(sigs["signatures"]) == statuses.count(201)
    signed = {s["sha256_after"] for s in sigs["signatures"]}
    assert _stored(settings) - before == signed
    current = (await client.get(f"/api/v1/documents/{doc['id']}", headers=world.auth("xa1"))).json()
    assert current["sha256"] in signed
    assert _scratch_files(settings) == set()


async def test_expired_session_is_refused_and_its_prepared_file_removed(client, world, dev_keys, settings,
                                                                       app) -> None:
    key, chain = _token(dev_keys)
    doc = await _upload(client, world)
    prepared = await _prepare(client, world, doc["id"], chain)
    assert len(_prepared_files(settings)) == 1
    async with app.state.db.session() as s:
        await s.execute(update(ExternalSigningSession)
                        .where(col(ExternalSigningSession.id) == prepared["session_id"])
                        .values(expires_at=utcnow() - timedelta(minutes=1)))
        await s.commit()

    r = await client.post(f"/api/v1/signing-sessions/{prepared['session_id']}/complete",
                          headers=world.auth("xa1_signer"), json=_complete_body(key, prepared, chain))

    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "expired" in r.json()["detail"]
    assert _prepared_files(settings) == set()


async def test_abandoned_prepared_files_are_swept_by_a_later_prepare(client, world, dev_keys, settings) -> None:
    _, chain = _token(dev_keys)
    doc = await _upload(client, world)
    await _prepare(client, world, doc["id"], chain)
    (abandoned,) = (settings.blob_dir / "tmp").glob(".*.prepared")
    an_hour_ago = time.time() - 3600
    os.utime(abandoned, (an_hour_ago, an_hour_ago))

    await _prepare(client, world, doc["id"], chain)

    assert not abandoned.exists()
    assert len(_prepared_files(settings)) == 1  # the new session's, still usable
