"""A row altered so that it no longer decodes (data that is not JSON, a time that is not a
time) is reported as the chain's broken link, and the histories that hold it still answer."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from sqlalchemy import text

from service.settings import Settings
from service.storage.db import Database
from tests.audit.test_chain import _broken, _fill
from tests.factories.pdf import metadata, upload_form

DAMAGES = [("data", "{not json", "its data is not valid JSON"),
           ("at", "garbage", "its time is not a date and time")]


def _only_where_a_row_can_be_damaged(settings: Settings) -> None:
    if not settings.effective_database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's json and timestamp columns refuse such values: only SQLite stores them")


async def _damage(database: Database, seq: int, column: str, value: str) -> None:
    async with database.session() as s:
        await s.execute(text(f"UPDATE audit_entry SET {column} = :v WHERE seq = :seq"), {"v": value, "seq": seq})
        await s.commit()


@pytest.mark.parametrize(("column", "value", "why"), DAMAGES)
async def test_a_row_that_cannot_be_decoded_is_the_broken_link(settings, database, column, value, why) -> None:
    _only_where_a_row_can_be_damaged(settings)
    await _fill(database, 7)
    await _damage(database, 5, column, value)
    _broken(settings, 5, f"entry #5 cannot be read: {why}")


async def test_the_api_reports_a_damaged_row_like_an_altered_one(settings, client, world, database) -> None:
    _only_where_a_row_can_be_damaged(settings)
    await _fill(database, 3)
    async with database.session() as s:
        last = (await s.execute(text("SELECT max(seq) FROM audit_entry"))).scalar_one()
    await _damage(database, last - 1, "data", "{not json")
    r = await client.get("/api/v1/audit/verify", headers=world.auth("auditor"))
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is False
    assert r.json()["first_broken_seq"] == last - 1
    assert "cannot be read" in r.json()["reason"]


async def test_history_and_evidence_mark_a_damaged_entry_and_still_answer(settings, client, world, database) -> None:
    _only_where_a_row_can_be_damaged(settings)
    doc = (await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata()))).json()
    sent = await client.post(f"/api/v1/documents/{doc['id']}/send", headers=world.auth("xa1"),
                             json={"recipients": ["000.01.01.H99"]})
    assert sent.status_code == 200, sent.text
    async with database.session() as s:
        entries = (await s.execute(text("SELECT seq, action FROM audit_entry WHERE document_id = :d ORDER BY seq"),
                                   {"d": doc["id"]})).all()
    (first, first_action), (second, second_action) = entries[0], entries[1]
    await _damage(database, first, *DAMAGES[0][:2])
    await _damage(database, second, *DAMAGES[1][:2])

    history = await client.get(f"/api/v1/documents/{doc['id']}/history", headers=world.auth("xa1"))
    assert history.status_code == 200, history.text
    shown = {e["seq"]: e for e in history.json()["entries"]}
    assert [e["action"] for e in shown.values()] == [action for _, action in entries]
    assert shown[first]["data"] == {"damaged": True, "note": f"entry #{first} cannot be read: {DAMAGES[0][2]}"
                                                             " — the row was altered"}
    assert shown[first]["at"] is not None
    assert shown[second]["data"]["damaged"] is True
    assert shown[second]["at"] is None
    assert all("damaged" not in e["data"] for seq, e in shown.items() if seq not in (first, second))

    evidence = await client.get(f"/api/v1/documents/{doc['id']}/evidence", headers=world.auth("auditor"))
    assert evidence.status_code == 200, evidence.text
    with zipfile.ZipFile(io.BytesIO(evidence.content)) as zf:
        exported = {e["seq"]: e for e in json.loads(zf.read("history.json"))}
    assert exported[first]["action"] == first_action
    assert exported[second]["action"] == second_action
    assert exported[first]["data"]["damaged"] is exported[second]["data"]["damaged"] is True


async def test_a_time_moved_to_the_end_of_the_calendar_is_a_damaged_entry_not_an_error(
        settings, client, world, database) -> None:
    # Both databases store 9999-12-31 23:59 UTC; in Vietnam time it is a year no calendar has.
    doc = (await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata()))).json()
    async with database.session() as s:
        seq = (await s.execute(text("SELECT min(seq) FROM audit_entry WHERE document_id = :d"),
                               {"d": doc["id"]})).scalar_one()
        sqlite = settings.effective_database_url.startswith("sqlite")
        moment = "'9999-12-31 23:59:59.000000'" if sqlite else "'9999-12-31 23:59:59+00'::timestamptz"
        await s.execute(text(f"UPDATE audit_entry SET at = {moment} WHERE seq = :seq"), {"seq": seq})
        await s.commit()
    history = await client.get(f"/api/v1/documents/{doc['id']}/history", headers=world.auth("xa1"))
    assert history.status_code == 200, history.text
    entry = next(e for e in history.json()["entries"] if e["seq"] == seq)
    assert entry["at"] is None
    assert "beyond the calendar" in entry["data"]["note"]
    verdict = await client.get("/api/v1/audit/verify", headers=world.auth("auditor"))
    assert verdict.json()["ok"] is False
    assert verdict.json()["first_broken_seq"] == seq
