"""The whole life of a document through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

from tests.factories.pdf import metadata, upload_form

XA1 = "000.00.01.H99"
BRANCHES_XA1 = {"000.01.01.H99": "cb_dong", "000.02.01.H99": "cb_tay", "000.03.01.H99": "cb_truong"}


async def _inbox_delivery(client, world, who: str, doc_id: str) -> dict:
    r = await client.get("/api/v1/inbox", headers=world.auth(who))
    assert r.status_code == 200, r.text
    matches = [d for d in r.json()["items"] if d["document_id"] == doc_id]
    assert len(matches) == 1, f"{who} should have exactly one delivery of the document"
    return matches[0]


async def _status(client, world, who: str, delivery_id: str, **body) -> dict:
    r = await client.post(f"/api/v1/deliveries/{delivery_id}/status", headers=world.auth(who), json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def test_document_life_from_upload_to_recall(client, world) -> None:
    # The provincial clerk registers and sends to a commune and all its branches.
    up = await client.post("/api/v1/documents", headers=world.auth("tu"),
                           **upload_form(metadata("08-NQ/TU", urgency="Khẩn")))
    assert up.status_code == 201, up.text
    doc_id = up.json()["id"]
    sent = await client.post(f"/api/v1/documents/{doc_id}/send", headers=world.auth("tu"),
                             json={"recipients": [XA1, {"under": XA1}]})
    assert sent.status_code == 200, sent.text
    assert sent.json()["created"] == 4

    # Every recipient sees it arrived (01), with the verification report made on sending
    # (an unsigned document is not "passed"); the commune and one branch register (03), one returns (02).
    report = await client.get(f"/api/v1/documents/{doc_id}/verification", headers=world.auth("cb_tay"))
    assert report.status_code == 200
    assert report.json()["verdict"] != "passed"
    xa1 = await _inbox_delivery(client, world, "xa1", doc_id)
    assert xa1["status"] == "01"
    assert xa1["document"]["urgency_name"] == "Khẩn"
    await _status(client, world, "xa1", xa1["id"], status="03", incoming_number="125")
    dong = await _inbox_delivery(client, world, "cb_dong", doc_id)
    await _status(client, world, "cb_dong", dong["id"], status="03", incoming_number="7")
    tay = await _inbox_delivery(client, world, "cb_tay", doc_id)
    returned = await _status(client, world, "cb_tay", tay["id"], status="02", note="Gửi nhầm đơn vị")
    assert returned["status"] == "02"

    # The commune forwards to a unit below it (already a recipient: skipped) — and
    # handling goes on: assigned (04), processing (05), completed (06).
    fwd = await client.post(f"/api/v1/deliveries/{xa1['id']}/forward", headers=world.auth("xa1"),
                            json={"recipients": ["000.03.01.H99", "000.01.01.H99"]})
    assert fwd.status_code == 200, fwd.text
    assert fwd.json()["already_sent"] == 2
    for step in ("04", "05", "06"):
        await _status(client, world, "xa1", xa1["id"], status=step, assignee="Lê Văn Cường")

    # The sender sees every recipient's status, counted and listed.
    seen = await client.get(f"/api/v1/documents/{doc_id}/deliveries", headers=world.auth("tu"))
    assert seen.status_code == 200
    body = seen.json()
    assert body["status_counts"] == {"06": 1, "03": 1, "02": 1, "01": 1}
    by_code = {d["recipient"]["code"]: d for d in body["items"]}
    assert by_code[XA1]["status"] == "06"
    assert by_code["000.02.01.H99"]["note"] == "Gửi nhầm đơn vị"

    # Recall: each recipient still holding it is asked (13) and answers 15 or 16.
    rec = await client.post(f"/api/v1/documents/{doc_id}/recall", headers=world.auth("tu"),
                            json={"reason": "Ban hành nhầm nội dung"})
    assert rec.status_code == 200
    assert rec.json()["recall_requested"] == 3
    truong = await _inbox_delivery(client, world, "cb_truong", doc_id)
    assert truong["status"] == "13"
    await _status(client, world, "cb_truong", truong["id"], status="15")
    await _status(client, world, "cb_dong", dong["id"], status="16", note="Đã triển khai thực hiện")
    gone = await client.get(f"/api/v1/documents/{doc_id}/content", headers=world.auth("cb_truong"))
    assert gone.status_code == 410
    assert gone.headers["content-type"].startswith("application/problem+json")

    # Each delivery shows its steps: who did what, when, and why.
    steps = (await client.get(f"/api/v1/deliveries/{dong['id']}", headers=world.auth("tu"))).json()["steps"]
    assert [st["status"] for st in steps] == ["01", "03", "13", "16"]
    assert steps[-1]["note"] == "Đã triển khai thực hiện"
    assert steps[1]["actor_id"] is not None
    assert steps[0]["at"].endswith("+07:00")

    final = (await client.get(f"/api/v1/documents/{doc_id}/deliveries", headers=world.auth("tu"))).json()
    assert final["status_counts"] == {"13": 1, "15": 1, "16": 1, "02": 1}

    # The whole story is in the audit history, and the chain holds.
    hist = await client.get(f"/api/v1/documents/{doc_id}/history", headers=world.auth("auditor"))
    actions = [e["action"] for e in hist.json()["entries"]]
    assert actions[:3] == ["document.registered", "document.verified", "document.sent"]
    assert "delivery.forwarded" in actions
    assert "document.recall_requested" in actions
    assert actions.count("delivery.status.03") == 2
    chain = await client.get("/api/v1/audit/verify", headers=world.auth("auditor"))
    assert chain.json()["ok"] is True


async def test_forwarding_keeps_the_chain_of_hops(client, world) -> None:
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata("09-NQ/TU")))
    doc_id = up.json()["id"]
    await client.post(f"/api/v1/documents/{doc_id}/send", headers=world.auth("tu"), json={"recipients": [XA1]})
    xa1 = await _inbox_delivery(client, world, "xa1", doc_id)
    blocked = await client.post(f"/api/v1/deliveries/{xa1['id']}/forward", headers=world.auth("xa1"),
                                json={"recipients": ["000.01.01.H99"]})
    assert blocked.status_code == 409, "forwarding before registering must be refused"
    await _status(client, world, "xa1", xa1["id"], status="03", incoming_number="12")
    fwd = await client.post(f"/api/v1/deliveries/{xa1['id']}/forward", headers=world.auth("xa1"),
                            json={"recipients": ["000.01.01.H99"]})
    assert fwd.json()["created"] == 1
    dong = await _inbox_delivery(client, world, "cb_dong", doc_id)
    province = (await client.get("/api/v1/units/me", headers=world.auth("tu"))).json()["id"]
    commune = (await client.get("/api/v1/units/me", headers=world.auth("xa1"))).json()["id"]
    branch = (await client.get("/api/v1/units/me", headers=world.auth("cb_dong"))).json()["id"]
    assert dong["hops"] == [province, commune, branch]
    assert dong["parent_delivery_id"] == xa1["id"]
    # The sender sees the forwarded delivery too.
    seen = (await client.get(f"/api/v1/documents/{doc_id}/deliveries", headers=world.auth("tu"))).json()
    assert seen["status_counts"] == {"03": 1, "01": 1}
    # Forwarding upwards is outside the forward policy (descendants only).
    up_fwd = await client.post(f"/api/v1/deliveries/{xa1['id']}/forward", headers=world.auth("xa1"),
                               json={"recipients": ["000.00.02.H99"]})
    assert up_fwd.status_code == 403
    assert "descendants" in up_fwd.json()["detail"]


async def test_urgent_documents_come_first_in_the_inbox(client, world) -> None:
    for number, urgency in (("10-CV/TU", "Thường"), ("11-CV/TU", "Hỏa tốc"), ("12-CV/TU", "Khẩn")):
        up = await client.post("/api/v1/documents", headers=world.auth("tu"),
                               **upload_form(metadata(number, urgency=urgency)))
        await client.post(f"/api/v1/documents/{up.json()['id']}/send", headers=world.auth("tu"),
                          json={"recipients": [XA1]})
    items = (await client.get("/api/v1/inbox", headers=world.auth("xa1"))).json()["items"]
    assert [i["document"]["number_notation"] for i in items] == ["11-CV/TU", "12-CV/TU", "10-CV/TU"]


async def test_invalid_transitions_are_refused_with_the_allowed_steps(client, world) -> None:
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata("13-CV/TU")))
    await client.post(f"/api/v1/documents/{up.json()['id']}/send", headers=world.auth("tu"),
                      json={"recipients": [XA1]})
    d = await _inbox_delivery(client, world, "xa1", up.json()["id"])
    r = await client.post(f"/api/v1/deliveries/{d['id']}/status", headers=world.auth("xa1"), json={"status": "06"})
    assert r.status_code == 409
    assert "02, 03" in r.json()["detail"]
    r = await client.post(f"/api/v1/deliveries/{d['id']}/status", headers=world.auth("xa1"), json={"status": "02"})
    assert r.status_code == 422
    assert r.json()["field"] == "note"
    r = await client.post(f"/api/v1/deliveries/{d['id']}/status", headers=world.auth("xa1"), json={"status": "03"})
    assert r.status_code == 422
    assert r.json()["field"] == "incoming_number"


async def test_the_same_send_twice_at_once_delivers_once(client, world) -> None:
    # An integration that retries without an Idempotency-Key, both attempts in flight together.
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata("31-CV/TU")))
    doc_id = up.json()["id"]
    body = {"recipients": ["000.00.01.H99", {"under": "000.00.01.H99"}]}
    answers = await asyncio.gather(*[
        client.post(f"/api/v1/documents/{doc_id}/send", headers=world.auth("tu"), json=body) for _ in range(4)])
    assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
    assert any(a.status_code == 200 and a.json()["created"] == 4 for a in answers), [a.text for a in answers]
    for a in answers:
        if a.status_code == 409:
            assert a.headers["content-type"].startswith("application/problem+json")
            assert "retry" in a.json()["detail"]
    listing = await client.get(f"/api/v1/documents/{doc_id}/deliveries", headers=world.auth("tu"))
    assert sorted(d["recipient"]["code"] for d in listing.json()["items"]) == [
        "000.00.01.H99", "000.01.01.H99", "000.02.01.H99", "000.03.01.H99"]


async def test_a_second_send_reaches_only_new_units_and_keeps_the_first_sent_time(client, world) -> None:
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata("09-NQ/TU")))
    doc_id = up.json()["id"]
    unsent = await client.get(f"/api/v1/documents/{doc_id}", headers=world.auth("tu"))
    assert unsent.json()["sent_at"] is None
    first = await client.post(f"/api/v1/documents/{doc_id}/send", headers=world.auth("tu"), json={"recipients": [XA1]})
    assert first.json()["created"] == 1
    sent_at = (await client.get(f"/api/v1/documents/{doc_id}", headers=world.auth("tu"))).json()["sent_at"]
    assert sent_at is not None
    again = await client.post(f"/api/v1/documents/{doc_id}/send", headers=world.auth("tu"),
                              json={"recipients": [XA1, *BRANCHES_XA1]})
    assert (again.json()["created"], again.json()["already_sent"]) == (3, 1)
    after = await client.get(f"/api/v1/documents/{doc_id}", headers=world.auth("tu"))
    assert after.json()["sent_at"] == sent_at, "the first send's time stays"
    seen = await client.get(f"/api/v1/documents/{doc_id}/deliveries", headers=world.auth("tu"))
    assert sorted(d["recipient"]["code"] for d in seen.json()["items"]) == sorted([XA1, *BRANCHES_XA1])


async def test_the_same_send_at_once_with_and_without_an_idempotency_key_is_never_a_500(client, world) -> None:
    # The keyed send writes its deliveries early (its Idempotency-Key record is flushed
    # first) and takes the audit chain's head at its commit; the other one's deliveries go
    # with its commit. Neither may hold the head while it waits for the other's rows.
    body = {"recipients": [XA1, {"under": XA1}]}
    for n in range(6):
        up = await client.post("/api/v1/documents", headers=world.auth("tu"),
                               **upload_form(metadata(f"{70 + n}-CV/TU")))
        doc_id = up.json()["id"]
        keyed, plain = await asyncio.gather(
            client.post(f"/api/v1/documents/{doc_id}/send", json=body,
                        headers={**world.auth("tu"), "Idempotency-Key": f"retry-{n}"}),
            client.post(f"/api/v1/documents/{doc_id}/send", json=body, headers=world.auth("tu")))
        assert {keyed.status_code, plain.status_code} <= {200, 409}, (keyed.text, plain.text)
        assert 200 in {keyed.status_code, plain.status_code}
        listing = await client.get(f"/api/v1/documents/{doc_id}/deliveries", headers=world.auth("tu"))
        assert len(listing.json()["items"]) == 4
    chain = await client.get("/api/v1/audit/verify", headers=world.auth("auditor"))
    assert chain.json()["ok"] is True


async def test_two_first_sends_at_once_keep_the_time_of_the_one_committed_first(app, client, world) -> None:
    # Both read the document unsent and both mark it; the later commit must not move the
    # time. Read from the database: the API shows times to the second.
    from sqlalchemy import text

    for n in range(4):
        up = await client.post("/api/v1/documents", headers=world.auth("tu"),
                               **upload_form(metadata(f"{80 + n}-CV/TU")))
        doc_id = up.json()["id"]
        answers = await asyncio.gather(*[
            client.post(f"/api/v1/documents/{doc_id}/send", headers=world.auth("tu"), json={"recipients": [code]})
            for code in (XA1, "000.00.02.H99")])
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        async with app.state.db.session() as s:
            sent_at = (await s.execute(text("SELECT sent_at FROM document WHERE id = :d"), {"d": doc_id})).scalar_one()
            arrived = dict((await s.execute(text(
                "SELECT u.code, d.created_at FROM delivery d JOIN unit u ON u.id = d.recipient_unit_id "
                "WHERE d.document_id = :d"), {"d": doc_id})).all())
            first = (await s.execute(text(  # entries are numbered in commit order
                "SELECT data FROM audit_entry WHERE document_id = :d AND action = 'document.sent' ORDER BY seq"),
                {"d": doc_id})).scalars().first()
        sample = (first if isinstance(first, dict) else json.loads(first))["sample"]
        assert sent_at == arrived[sample[0]]


async def test_a_forward_at_the_moment_of_a_recall_leaves_no_copy_unrecalled(client, world) -> None:
    # The commune forwards to its branches while the province recalls: whichever goes first,
    # no copy is left outside the recall (on PostgreSQL both ran at once and the recall missed
    # the forwarded copies).
    for n in range(6):
        up = await client.post("/api/v1/documents", headers=world.auth("tu"),
                               **upload_form(metadata(f"{90 + n}-CV/TU")))
        doc_id = up.json()["id"]
        sent = await client.post(f"/api/v1/documents/{doc_id}/send", headers=world.auth("tu"),
                                 json={"recipients": [XA1]})
        assert sent.status_code == 200, sent.text
        xa1 = await _inbox_delivery(client, world, "xa1", doc_id)
        await _status(client, world, "xa1", xa1["id"], status="03", incoming_number=f"{200 + n}")
        forward, recall = await asyncio.gather(
            client.post(f"/api/v1/deliveries/{xa1['id']}/forward", headers=world.auth("xa1"),
                        json={"recipients": [{"under": XA1}]}),
            client.post(f"/api/v1/documents/{doc_id}/recall", headers=world.auth("tu"), json={"reason": "Nhầm"}))
        assert recall.status_code == 200, recall.text
        counts = (await client.get(f"/api/v1/documents/{doc_id}/deliveries",
                                   headers=world.auth("tu"))).json()["status_counts"]
        if forward.status_code == 200:  # the forward went first: the recall asked its copies too
            assert counts == {"13": 1 + len(BRANCHES_XA1)}, counts
        else:  # the recall went first: the recalled copy is not passed on
            assert forward.status_code == 409, forward.text
            assert "asked for this document back" in forward.json()["detail"]
            assert counts == {"13": 1}, counts


async def test_an_incoming_number_is_given_once_a_year_in_a_unit_s_book(client, world) -> None:
    docs = []
    for n in range(3):
        up = await client.post("/api/v1/documents", headers=world.auth("tu"),
                               **upload_form(metadata(f"{70 + n}-CV/TU")))
        await client.post(f"/api/v1/documents/{up.json()['id']}/send", headers=world.auth("tu"),
                          json={"recipients": [XA1, "000.00.02.H99"]})
        docs.append(up.json()["id"])
    first = await _inbox_delivery(client, world, "xa1", docs[0])
    await _status(client, world, "xa1", first["id"], status="03", incoming_number="125")
    # The same number again — as typed, with a leading zero, with spaces — names the holder.
    second = await _inbox_delivery(client, world, "xa1", docs[1])
    for typed in ("125", "0125", " 125 "):
        r = await client.post(f"/api/v1/deliveries/{second['id']}/status", headers=world.auth("xa1"),
                              json={"status": "03", "incoming_number": typed})
        assert r.status_code == 409, r.text
        assert "70-CV/TU" in r.json()["detail"]
        assert "next free number" in r.json()["detail"]
    assert (await _inbox_delivery(client, world, "xa1", docs[1]))["status"] == "01"  # nothing half-done
    await _status(client, world, "xa1", second["id"], status="03", incoming_number="126")
    # Another unit's book is its own.
    other = await _inbox_delivery(client, world, "xa2", docs[0])
    await _status(client, world, "xa2", other["id"], status="03", incoming_number="125")
    # Numbers as clerks type them: a superscript digit, letters that case folding lengthens.
    other2 = await _inbox_delivery(client, world, "xa2", docs[1])
    await _status(client, world, "xa2", other2["id"], status="03", incoming_number="ß" * 50)
    other3 = await _inbox_delivery(client, world, "xa2", docs[2])
    await _status(client, world, "xa2", other3["id"], status="03", incoming_number="²")
    # Two deliveries of one unit registered under one number at the same moment: one is kept.
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata("73-CV/TU")))
    await client.post(f"/api/v1/documents/{up.json()['id']}/send", headers=world.auth("tu"),
                      json={"recipients": [XA1]})
    third = await _inbox_delivery(client, world, "xa1", docs[2])
    fourth = await _inbox_delivery(client, world, "xa1", up.json()["id"])
    answers = await asyncio.gather(*(
        client.post(f"/api/v1/deliveries/{d['id']}/status", headers=world.auth("xa1"),
                    json={"status": "03", "incoming_number": "127"}) for d in (third, fourth)))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]


async def test_copies_of_one_keyed_request_sent_at_once_all_get_the_first_answer(client, world) -> None:
    # An integration whose network layer sends a request twice at the same moment: one effect,
    # and every copy gets the same answer (on PostgreSQL the copies got 409s).
    body = upload_form(metadata("60-CV/TU"))
    keyed = {**world.auth("tu"), "Idempotency-Key": "upload-60"}
    uploads = await asyncio.gather(*(client.post("/api/v1/documents", headers=keyed, **body) for _ in range(3)))
    assert [u.status_code for u in uploads] == [201, 201, 201], [u.text for u in uploads]
    assert len({u.json()["id"] for u in uploads}) == 1
    assert sorted(u.headers.get("Idempotent-Replayed", "") for u in uploads) == ["", "true", "true"]
    doc_id = uploads[0].json()["id"]
    keyed = {**world.auth("tu"), "Idempotency-Key": "send-60"}
    sends = await asyncio.gather(*(client.post(f"/api/v1/documents/{doc_id}/send", headers=keyed,
                                               json={"recipients": [XA1]}) for _ in range(3)))
    assert [s.status_code for s in sends] == [200, 200, 200], [s.text for s in sends]
    assert {s.json()["created"] for s in sends} == {1}
    counts = (await client.get(f"/api/v1/documents/{doc_id}/deliveries", headers=world.auth("tu"))).json()
    assert counts["status_counts"] == {"01": 1}
