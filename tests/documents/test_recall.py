"""A recall the recipient refused can be asked again, and refused again, without the
delivery losing its place in handling."""

from __future__ import annotations

from tests.factories.pdf import metadata, upload_form


async def _registered(client, world, number: str) -> tuple[str, str]:
    """A document of the province registered (03) by commune 1: its id and the delivery's id."""
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata(number)))
    doc = up.json()["id"]
    await client.post(f"/api/v1/documents/{doc}/send", headers=world.auth("tu"), json={"recipients": ["000.00.01.H99"]})
    delivery = (await client.get(f"/api/v1/documents/{doc}/deliveries", headers=world.auth("tu"))).json()["items"][0]
    registered = await client.post(f"/api/v1/deliveries/{delivery['id']}/status", headers=world.auth("xa1"),
                                   json={"status": "03", "incoming_number": "7"})
    assert registered.status_code == 200, registered.text
    return doc, delivery["id"]


async def test_a_second_recall_refused_resumes_handling_where_it_stood(client, world) -> None:
    doc, delivery_id = await _registered(client, world, "44-CV/TU")
    step = f"/api/v1/deliveries/{delivery_id}/status"
    for _ in range(2):
        asked = await client.post(f"/api/v1/documents/{doc}/recall", headers=world.auth("tu"),
                                  json={"reason": "Xem lại số hiệu"})
        assert asked.json()["recall_requested"] == 1
        refused = await client.post(step, headers=world.auth("xa1"), json={"status": "16", "note": "Đã triển khai"})
        assert refused.status_code == 200, refused.text
    assigned = await client.post(step, headers=world.auth("xa1"), json={"status": "04", "assignee": "Phó Văn phòng"})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["status"] == "04"


async def test_a_registered_copy_whose_recall_was_refused_can_be_forwarded(client, world) -> None:
    doc, delivery_id = await _registered(client, world, "45-CV/TU")
    step = f"/api/v1/deliveries/{delivery_id}/status"
    forward = f"/api/v1/deliveries/{delivery_id}/forward"
    await client.post(f"/api/v1/documents/{doc}/recall", headers=world.auth("tu"), json={"reason": "Xem lại"})
    # While the recall is open (13) the copy stays where it is.
    held = await client.post(forward, headers=world.auth("xa1"), json={"recipients": ["000.01.01.H99"]})
    assert held.status_code == 409, held.text
    await client.post(step, headers=world.auth("xa1"), json={"status": "16", "note": "Đã triển khai"})

    sent_on = await client.post(forward, headers=world.auth("xa1"), json={"recipients": ["000.01.01.H99"]})

    assert sent_on.status_code == 200, sent_on.text
    assert sent_on.json()["created"] == 1
    inbox = (await client.get("/api/v1/inbox", headers=world.auth("cb_dong"))).json()["items"]
    assert [i["document"]["id"] for i in inbox] == [doc]


async def test_a_recalled_document_is_sent_to_nobody_new(client, world) -> None:
    doc, _ = await _registered(client, world, "45-CV/TU")
    asked = await client.post(f"/api/v1/documents/{doc}/recall", headers=world.auth("tu"),
                              json={"reason": "Ban hành nhầm nội dung"})
    assert asked.status_code == 200, asked.text
    again = await client.post(f"/api/v1/documents/{doc}/send", headers=world.auth("tu"),
                              json={"recipients": ["000.00.02.H99"]})
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    assert "was recalled on" in again.json()["detail"]
    assert "+07:00" in again.json()["detail"]
    deliveries = (await client.get(f"/api/v1/documents/{doc}/deliveries", headers=world.auth("tu"))).json()
    assert [d["recipient"]["code"] for d in deliveries["items"]] == ["000.00.01.H99"]


async def test_the_sender_is_told_to_recall_rather_than_not_found_when_it_handles_a_copy(client, world) -> None:
    # The sending clerk reads each recipient's delivery; changing one is the recipient's, and a
    # "not found" for a delivery on the screen tells the clerk nothing.
    doc, delivery_id = await _registered(client, world, "46-CV/TU")
    assert (await client.get(f"/api/v1/deliveries/{delivery_id}", headers=world.auth("tu"))).status_code == 200
    for action, body in (("status", {"status": "06"}), ("forward", {"recipients": ["000.01.01.H99"]})):
        r = await client.post(f"/api/v1/deliveries/{delivery_id}/{action}", headers=world.auth("tu"), json=body)
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert f"/api/v1/documents/{doc}/recall" in r.json()["detail"]
    # A unit that cannot see the delivery still learns nothing of it.
    foreign = await client.post(f"/api/v1/deliveries/{delivery_id}/status", headers=world.auth("xa2"),
                                json={"status": "06"})
    made_up = await client.post(f"/api/v1/deliveries/{'0' * 32}/status", headers=world.auth("xa2"),
                                json={"status": "06"})
    assert foreign.status_code == made_up.status_code == 404
    assert foreign.json()["detail"] == made_up.json()["detail"]
    seen = (await client.get(f"/api/v1/deliveries/{delivery_id}", headers=world.auth("xa1"))).json()
    assert seen["status"] == "03", "nothing changed"
