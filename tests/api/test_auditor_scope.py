"""An auditor granted a subtree reads what its units took part in, and nothing of how a
unit outside it handled its own copy of the same document."""

from __future__ import annotations

from tests.factories.pdf import metadata, upload_form

XA1, XA2 = "000.00.01.H99", "000.00.02.H99"


async def _commune_auditor(app, world) -> dict[str, str]:
    from service import auth, units

    async with app.state.db.session() as s:
        unit = await units.get_unit(s, XA1)
        user = await auth.create_user(s, unit=unit, username="audit.xa1", full_name="Kiểm tra xã",
                                      roles=["auditor"], audit_root=unit)
        token = (await auth.issue_token(s, user, days=1)).token
        await s.commit()
    return {"Authorization": f"Bearer {token}"}


async def test_a_commune_auditor_sees_its_communes_delivery_but_not_a_siblings(app, client, world) -> None:
    auditor = await _commune_auditor(app, world)
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata("12-CV/TU")))
    doc = up.json()["id"]
    sent = await client.post(f"/api/v1/documents/{doc}/send", headers=world.auth("tu"),
                             json={"recipients": [XA1, XA2]})
    assert sent.status_code == 200, sent.text
    listed = (await client.get(f"/api/v1/documents/{doc}/deliveries", headers=world.auth("tu"))).json()["items"]
    by_unit = {d["recipient"]["code"]: d["id"] for d in listed}
    returned = await client.post(f"/api/v1/deliveries/{by_unit[XA2]}/status", headers=world.auth("xa2"),
                                 json={"status": "02", "note": "Sai thể thức, đề nghị ban hành lại"})
    assert returned.status_code == 200, returned.text
    registered = await client.post(f"/api/v1/deliveries/{by_unit[XA1]}/status", headers=world.auth("xa1"),
                                   json={"status": "03", "incoming_number": "41"})
    assert registered.status_code == 200, registered.text

    own = await client.get(f"/api/v1/deliveries/{by_unit[XA1]}", headers=auditor)
    assert own.status_code == 200
    sibling = await client.get(f"/api/v1/deliveries/{by_unit[XA2]}", headers=auditor)
    missing = await client.get(f"/api/v1/deliveries/{'0' * 32}", headers=auditor)
    assert sibling.status_code == missing.status_code == 404
    assert sibling.json()["detail"] == missing.json()["detail"]
    assert "Sai thể thức" not in sibling.text
    # The document's history and its list of recipients: the commune's part only.
    xa2_id = (await client.get(f"/api/v1/units/{XA2}", headers=world.auth("admin"))).json()["id"]
    history = await client.get(f"/api/v1/documents/{doc}/history", headers=auditor)
    assert history.status_code == 200
    assert history.json()["entries"], "the commune's own part of the history is there"
    assert xa2_id not in {e["unit_id"] for e in history.json()["entries"]}
    listed = (await client.get(f"/api/v1/documents/{doc}/deliveries", headers=auditor)).json()
    assert [d["recipient"]["code"] for d in listed["items"]] == [XA1]
    # The province's own auditor still sees all of it.
    assert (await client.get(f"/api/v1/deliveries/{by_unit[XA2]}", headers=world.auth("auditor"))).status_code == 200
    full = (await client.get(f"/api/v1/documents/{doc}/history", headers=world.auth("auditor"))).json()["entries"]
    assert xa2_id in {e["unit_id"] for e in full}
    everyone = (await client.get(f"/api/v1/documents/{doc}/deliveries", headers=world.auth("auditor"))).json()
    assert sorted(d["recipient"]["code"] for d in everyone["items"]) == [XA1, XA2]
