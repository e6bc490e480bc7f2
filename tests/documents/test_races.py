"""Concurrent changes of one delivery or document: exactly one wins, the rest are told so.

Through HTTP the requests interleave on PostgreSQL (each waits on the database while the
others run); SQLite serialises whole transactions, so the stale read a loser acts on is
also made directly, in one session, and the service must still refuse it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlmodel import col

from service.audit.models import AuditEntry
from service.auth import authenticate
from service.documents import (
    STATUS_NAMES,
    Delivery,
    DeliveryEvent,
    StatusChange,
    change_status,
    recall_document,
)
from service.errors import ConflictError
from service.outbox.models import OutboxEvent
from tests.conftest import World
from tests.factories.pdf import metadata, upload_form

XA1 = "000.00.01.H99"
PROBLEM = "application/problem+json"


async def _sent(client: httpx.AsyncClient, world: World, number: str, recipients: list[Any]) -> str:
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata(number)))
    assert up.status_code == 201, up.text
    doc_id: str = up.json()["id"]
    sent = await client.post(f"/api/v1/documents/{doc_id}/send", headers=world.auth("tu"),
                             json={"recipients": recipients})
    assert sent.status_code == 200, sent.text
    return doc_id


async def _xa1_delivery(client: httpx.AsyncClient, world: World, doc_id: str) -> str:
    r = await client.get("/api/v1/inbox", headers=world.auth("xa1"))
    assert r.status_code == 200, r.text
    [delivery_id] = [d["id"] for d in r.json()["items"] if d["document_id"] == doc_id]
    return delivery_id


async def _count(app: Any, model: Any, *where: Any) -> int:
    async with app.state.db.session() as s:
        return int((await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


def _assert_conflicts(losers: list[httpx.Response], now: str) -> None:
    """Each loser is a 409 problem naming the status the winner left."""
    for r in losers:
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert STATUS_NAMES[now] in r.json()["detail"], r.json()["detail"]


async def test_ten_registrations_and_returns_at_once_one_wins(app, client, world) -> None:
    doc_id = await _sent(client, world, "11-CV/TU", [XA1])
    delivery_id = await _xa1_delivery(client, world, doc_id)
    bodies = [{"status": "02", "note": f"Gửi nhầm {n}"} if n % 2 else {"status": "03", "incoming_number": f"{n}"}
              for n in range(10)]
    replies = await asyncio.gather(*(
        client.post(f"/api/v1/deliveries/{delivery_id}/status", headers=world.auth("xa1"), json=b) for b in bodies))

    winners = [r for r in replies if r.status_code == 200]
    assert len(winners) == 1, [r.text for r in replies]
    won = winners[0].json()
    _assert_conflicts([r for r in replies if r.status_code != 200], won["status"])
    shown = (await client.get(f"/api/v1/deliveries/{delivery_id}", headers=world.auth("xa1"))).json()
    assert (shown["status"], shown["incoming_number"]) == (won["status"], won["incoming_number"])
    assert await _count(app, DeliveryEvent, col(DeliveryEvent.delivery_id) == delivery_id) == 1
    returned = await _count(app, OutboxEvent, col(OutboxEvent.kind) == "returned")
    assert returned == (1 if won["status"] == "02" else 0)
    assert await _count(app, AuditEntry, col(AuditEntry.object_id) == delivery_id) == 1


async def test_ten_registrations_at_once_keep_one_number(app, client, world) -> None:
    doc_id = await _sent(client, world, "12-CV/TU", [XA1])
    delivery_id = await _xa1_delivery(client, world, doc_id)
    replies = await asyncio.gather(*(
        client.post(f"/api/v1/deliveries/{delivery_id}/status", headers=world.auth("xa1"),
                    json={"status": "03", "incoming_number": f"{100 + n}"}) for n in range(10)))

    winners = [r for r in replies if r.status_code == 200]
    assert len(winners) == 1, [r.text for r in replies]
    _assert_conflicts([r for r in replies if r.status_code != 200], "03")
    shown = (await client.get(f"/api/v1/deliveries/{delivery_id}", headers=world.auth("xa1"))).json()
    assert shown["incoming_number"] == winners[0].json()["incoming_number"]
    assert await _count(app, DeliveryEvent, col(DeliveryEvent.delivery_id) == delivery_id) == 1


async def test_ten_recalls_at_once_ask_each_recipient_once(app, client, world) -> None:
    doc_id = await _sent(client, world, "13-CV/TU", [XA1, {"under": XA1}])
    replies = await asyncio.gather(*(
        client.post(f"/api/v1/documents/{doc_id}/recall", headers=world.auth("tu"),
                    json={"reason": "Ban hành nhầm"}) for _ in range(10)))

    # As a recall repeated later answers: nobody left to ask.
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    assert sorted(r.json()["recall_requested"] for r in replies) == [0] * 9 + [4]
    in_doc = col(DeliveryEvent.delivery_id).in_(select(col(Delivery.id)).where(col(Delivery.document_id) == doc_id))
    assert await _count(app, DeliveryEvent, in_doc, col(DeliveryEvent.status) == "13") == 4
    assert await _count(app, OutboxEvent, col(OutboxEvent.document_id) == doc_id,
                        col(OutboxEvent.kind) == "recall") == 4
    seen = (await client.get(f"/api/v1/documents/{doc_id}/deliveries", headers=world.auth("tu"))).json()
    assert seen["status_counts"] == {"13": 4}
    # Each remembers where handling stood (01), not the 13 a losing recall saw.
    assert await _count(app, Delivery, col(Delivery.document_id) == doc_id,
                        col(Delivery.status_before_recall) == "01") == 4


async def test_recall_after_recall_asks_nobody_and_changes_nothing(client, world) -> None:
    doc_id = await _sent(client, world, "14-CV/TU", [XA1])
    answers, shown = [], []
    for reason in ("Ban hành nhầm", "Ban hành nhầm số"):
        answers.append(await client.post(f"/api/v1/documents/{doc_id}/recall", headers=world.auth("tu"),
                                         json={"reason": reason}))
        shown.append((await client.get(f"/api/v1/documents/{doc_id}", headers=world.auth("tu"))).json())
    assert [(r.status_code, r.json()["recall_requested"]) for r in answers] == [(200, 1), (200, 0)]
    # The record of the first recall stands: its time, and one entry in the history.
    assert shown[0]["recalled_at"] is not None
    assert shown[1]["recalled_at"] == shown[0]["recalled_at"]
    history = (await client.get(f"/api/v1/documents/{doc_id}/history", headers=world.auth("tu"))).json()
    recalls = [e for e in history["entries"] if e["action"] == "document.recall_requested"]
    assert [e["data"]["reason"] for e in recalls] == ["Ban hành nhầm"]


# -- The loser's read, made directly: one stale session, or two sessions at once ------


async def _changed_underneath(session: Any, delivery_id: str, status: str) -> None:
    """What a concurrent winner committed after this session read the delivery."""
    await session.execute(update(Delivery).where(col(Delivery.id) == delivery_id)
                          .values(status=status, incoming_number="7")
                          .execution_options(synchronize_session=False))


async def _written_for(session: Any, delivery_id: str) -> tuple[int, int]:
    """Delivery events and "returned" notifications of the delivery."""
    events = await session.execute(select(func.count()).select_from(DeliveryEvent)
                                   .where(col(DeliveryEvent.delivery_id) == delivery_id))
    notices = await session.execute(select(func.count()).select_from(OutboxEvent)
                                    .where(col(OutboxEvent.delivery_id) == delivery_id,
                                           col(OutboxEvent.kind) == "returned"))
    return events.scalar_one(), notices.scalar_one()


async def test_a_step_checked_against_a_stale_status_is_refused(app, client, world) -> None:
    doc_id = await _sent(client, world, "15-CV/TU", [XA1])
    delivery_id = await _xa1_delivery(client, world, doc_id)
    async with app.state.db.session() as s:
        principal = await authenticate(s, world.tokens["xa1"])
        seen = await s.get(Delivery, delivery_id)  # kept: the service gets this object, as the loser read it
        assert seen is not None
        assert seen.status == "01"
        await _changed_underneath(s, delivery_id, "03")
        with pytest.raises(ConflictError, match=r"changed while you were changing it \(it is now 03 registered"):
            await change_status(s, principal, delivery_id, StatusChange(status="02", note="Gửi nhầm"))
        await s.flush()
        assert await _written_for(s, delivery_id) == (0, 0)


async def test_two_sessions_returning_and_registering_at_once(app, client, world) -> None:
    doc_id = await _sent(client, world, "16-CV/TU", [XA1])
    delivery_id = await _xa1_delivery(client, world, doc_id)
    db = app.state.db
    async with db.session() as first, db.session() as second:
        principal = await authenticate(first, world.tokens["xa1"])
        await change_status(first, principal, delivery_id, StatusChange(status="03", incoming_number="125"))
        # PostgreSQL: the second reads 01 and waits for the first's row lock; SQLite: it
        # waits for the connection the first holds.
        late = asyncio.create_task(change_status(second, principal, delivery_id,
                                                 StatusChange(status="02", note="Gửi nhầm")))
        await asyncio.sleep(0.3)
        await first.commit()
        with pytest.raises(ConflictError, match=r"registered \(đã vào sổ\)"):
            await late
    async with db.session() as s:
        delivery = await s.get(Delivery, delivery_id)
        assert delivery is not None
        assert (delivery.status, delivery.incoming_number) == ("03", "125")
        assert await _written_for(s, delivery_id) == (1, 0)


async def test_two_sessions_recalling_at_once(app, client, world) -> None:
    doc_id = await _sent(client, world, "17-CV/TU", [XA1, {"under": XA1}])
    db = app.state.db
    async with db.session() as first, db.session() as second:
        principal = await authenticate(first, world.tokens["tu"])
        assert await recall_document(first, principal, doc_id, "Ban hành nhầm") == 4
        late = asyncio.create_task(recall_document(second, principal, doc_id, "Ban hành nhầm"))
        await asyncio.sleep(0.3)
        await first.commit()
        assert await late == 0
        await second.commit()
    in_doc = col(DeliveryEvent.delivery_id).in_(select(col(Delivery.id)).where(col(Delivery.document_id) == doc_id))
    assert await _count(app, DeliveryEvent, in_doc) == 4
    assert await _count(app, OutboxEvent, col(OutboxEvent.document_id) == doc_id,
                        col(OutboxEvent.kind) == "recall") == 4


async def test_a_recall_asks_only_what_is_still_recallable(app, client, world) -> None:
    doc_id = await _sent(client, world, "18-CV/TU", [XA1, {"under": XA1}])
    async with app.state.db.session() as s:
        principal = await authenticate(s, world.tokens["tu"])
        ids = list((await s.execute(select(col(Delivery.id)).where(col(Delivery.document_id) == doc_id))).scalars())
        await _changed_underneath(s, ids[0], "13")  # a concurrent recall already asked this one
        assert await recall_document(s, principal, doc_id, "Ban hành nhầm") == 3
        notices = await s.execute(select(col(OutboxEvent.delivery_id)).where(col(OutboxEvent.kind) == "recall"))
        assert sorted(notices.scalars()) == sorted(ids[1:])
