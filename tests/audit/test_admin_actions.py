"""Administration is audited like the exchange: people, tokens, the tree and the mail queue,
each change an entry of the chain naming who did it, and never a token."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from service.audit import AuditEntry, verify_chain
from tests.factories.pdf import metadata, upload_form

XA2 = "000.00.02.H99"


async def _entries(app, since: int) -> list[AuditEntry]:
    async with app.state.db.session() as s:
        stmt = select(AuditEntry).where(col(AuditEntry.seq) > since).order_by(col(AuditEntry.seq))
        return list((await s.execute(stmt)).scalars())


async def _last_seq(app) -> int:
    entries = await _entries(app, 0)
    return entries[-1].seq if entries else 0


async def test_every_administrative_change_is_an_entry_naming_its_actor(app, client, world) -> None:
    admin = world.auth("admin")
    admin_id = (await client.get("/api/v1/me", headers=admin)).json()["user_id"]
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata("90-CV/TU")))
    await client.post(f"/api/v1/documents/{up.json()['id']}/send", headers=world.auth("tu"),
                      json={"recipients": [XA2]})
    notice = (await client.get("/api/v1/notifications", headers=world.auth("xa2"))).json()["notifications"][0]["id"]
    start = await _last_seq(app)

    user = (await client.post("/api/v1/users", headers=admin, json={
        "username": "vanthu.moi", "full_name": "Lê Thị Mới", "roles": ["clerk"], "unit": XA2})).json()
    token = (await client.post(f"/api/v1/users/{user['id']}/tokens", headers=admin, json={"label": "máy văn thư"}))
    assert (await client.delete(f"/api/v1/tokens/{token.json()['id']}", headers=admin)).status_code == 204
    assert (await client.delete(f"/api/v1/tokens/{token.json()['id']}", headers=admin)).status_code == 204
    await client.post("/api/v1/units/import", headers=admin, json=[
        {"code": "000.09.02.H99", "name": "Chi bộ khu phố 9", "level": "Chi bộ", "parent_code": XA2}])
    await client.patch(f"/api/v1/units/{XA2}", headers=admin, json={"name": "Đảng ủy phường Hồng Hà mới"})
    await client.patch(f"/api/v1/units/{XA2}", headers=admin, json={"name": "Đảng ủy phường Hồng Hà mới"})
    await client.patch("/api/v1/units/000.09.02.H99", headers=admin, json={"parent": "000.00.01.H99"})
    for action in ("cancel", "retry"):
        assert (await client.post(f"/api/v1/notifications/{notice}/{action}", headers=admin)).status_code == 200

    entries = await _entries(app, start)
    assert [e.action for e in entries] == [
        "user.created", "token.issued", "token.revoked", "units.imported", "unit.updated", "unit.moved",
        "notification.cancelled", "notification.retried"]  # a repeated revoke or rename changes nothing
    assert {e.actor_id for e in entries} == {admin_id}
    assert entries[0].data["username"] == "vanthu.moi"
    assert entries[4].data["changed"] == {"name": "Đảng ủy phường Hồng Hà mới"}
    assert entries[3].data["codes"] == ["000.09.02.H99"]
    assert token.json()["token"] not in str([e.data for e in entries])
    async with app.state.db.session() as s:
        assert (await verify_chain(s)).ok
