"""Administrators manage the people of their subtree: change their roles and reach, deactivate
and activate them, and see which tokens each holds — never a token itself."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from service.audit import AuditEntry

XA1 = "000.00.01.H99"


async def _user(client, world, username: str) -> dict:
    users = (await client.get("/api/v1/users", headers=world.auth("admin"))).json()["users"]
    return next(u for u in users if u["username"] == username)


async def _new_token(client, world, user_id: str) -> dict[str, str]:
    r = await client.post(f"/api/v1/users/{user_id}/tokens", headers=world.auth("admin"), json={"label": "máy 2"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def test_a_deactivated_clerk_is_refused_until_activated_again(client, world) -> None:
    clerk = await _user(client, world, "user.xa1")
    off = await client.patch(f"/api/v1/users/{clerk['id']}", headers=world.auth("admin"), json={"active": False})
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False

    refused = await client.get("/api/v1/inbox", headers=world.auth("xa1"))
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "deactivated" in refused.json()["detail"]
    listed = await _user(client, world, "user.xa1")
    assert listed["active"] is False

    on = await client.patch(f"/api/v1/users/{clerk['id']}", headers=world.auth("admin"), json={"active": True})
    assert on.status_code == 200, on.text
    assert (await client.get("/api/v1/inbox", headers=world.auth("xa1"))).status_code == 200


async def test_granting_the_signer_role_revokes_the_tokens_an_admin_handed_out(client, world) -> None:
    # An admin may issue a clerk's token; once that clerk signs for the unit, a token the admin
    # has seen would sign in the leader's name, so it stops working.
    clerk = await _user(client, world, "user.xa1")
    spare = await _new_token(client, world, clerk["id"])
    changed = await client.patch(f"/api/v1/users/{clerk['id']}", headers=world.auth("admin"),
                                 json={"roles": ["clerk", "signer"], "position": "Phó Bí thư"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["roles"] == ["clerk", "signer"]
    assert changed.json()["position"] == "Phó Bí thư"
    assert changed.json()["tokens_revoked"] == 2
    for headers in (spare, world.auth("xa1")):
        assert (await client.get("/api/v1/me", headers=headers)).status_code == 401

    tokens = (await client.get(f"/api/v1/users/{clerk['id']}/tokens", headers=world.auth("admin"))).json()["tokens"]
    assert [t["state"] for t in tokens] == ["revoked", "revoked"]
    assert {t["label"] for t in tokens} == {"", "máy 2"}
    assert all(t["revoked_at"].endswith("+07:00") for t in tokens)
    # A second change that grants nothing new revokes nothing more.
    again = await client.patch(f"/api/v1/users/{clerk['id']}", headers=world.auth("admin"),
                                json={"roles": ["signer", "clerk"]})
    assert again.json()["tokens_revoked"] == 0


async def test_every_change_is_audited_with_before_and_after(app, client, world) -> None:
    clerk = await _user(client, world, "user.cb_dong")
    admin_id = (await client.get("/api/v1/me", headers=world.auth("admin"))).json()["user_id"]
    await client.patch(f"/api/v1/users/{clerk['id']}", headers=world.auth("admin"),
                       json={"full_name": "Nguyễn Thị Đông", "roles": ["clerk", "auditor"], "audit_root": XA1})
    async with app.state.db.session() as s:
        entry = (await s.execute(select(AuditEntry).where(col(AuditEntry.action) == "user.updated")
                                 .order_by(col(AuditEntry.seq).desc()))).scalars().first()
    assert entry is not None
    assert entry.actor_id == admin_id
    assert entry.object_id == clerk["id"]
    assert entry.data["before"]["roles"] == ["clerk"]
    assert entry.data["after"]["roles"] == ["auditor", "clerk"]
    assert entry.data["after"]["full_name"] == "Nguyễn Thị Đông"
    assert "position" not in entry.data["after"], "only what changed is recorded"


async def test_an_admin_cannot_take_their_own_roles_or_switch_themselves_off(client, world) -> None:
    me = (await client.get("/api/v1/me", headers=world.auth("admin"))).json()
    for body in ({"roles": ["clerk"]}, {"active": False}):
        r = await client.patch(f"/api/v1/users/{me['user_id']}", headers=world.auth("admin"), json=body)
        assert r.status_code == 403, r.text
        assert "another administrator" in r.json()["detail"]
    assert (await client.get("/api/v1/me", headers=world.auth("admin"))).json()["roles"] == ["admin", "clerk"]
    own = await client.patch(f"/api/v1/users/{me['user_id']}", headers=world.auth("admin"),
                             json={"position": "Chánh Văn phòng"})
    assert own.status_code == 200
    assert own.json()["position"] == "Chánh Văn phòng"


async def test_a_commune_admin_manages_only_the_communes_people(client, world) -> None:
    admin = world.auth("admin")
    made = await client.post("/api/v1/users", headers=admin, json={
        "username": "quantri.xa1", "full_name": "Quản trị xã", "roles": ["admin"], "unit": XA1})
    commune_admin = await _new_token(client, world, made.json()["id"])
    province_clerk = await _user(client, world, "user.tu")
    sibling_clerk = await _user(client, world, "user.xa2")
    own_branch = await _user(client, world, "user.cb_dong")
    made_up = "0" * 32
    answers = []
    for target in (province_clerk["id"], sibling_clerk["id"], made_up):
        for method, path in (("PATCH", ""), ("GET", ""), ("GET", "/tokens")):
            r = await client.request(method, f"/api/v1/users/{target}{path}", headers=commune_admin,
                                     **({"json": {"active": False}} if method == "PATCH" else {}))
            answers.append((method, path, r.status_code, r.json()["detail"]))
    assert {a[2] for a in answers} == {404}
    assert len({a[3] for a in answers}) == 1, "a foreign user and a made-up id get the same answer"
    assert (await client.get("/api/v1/me", headers=world.auth("tu"))).status_code == 200

    ok = await client.patch(f"/api/v1/users/{own_branch['id']}", headers=commune_admin, json={"active": False})
    assert ok.status_code == 200
    # Nor can they hand one of theirs a reach beyond the commune.
    wide = await client.patch(f"/api/v1/users/{own_branch['id']}", headers=commune_admin,
                              json={"roles": ["auditor"], "audit_root": "000.00.00.H99"})
    assert wide.status_code == 404
    assert (await _user(client, world, "user.cb_dong"))["roles"] == ["clerk"]


async def test_changes_that_make_no_sense_are_refused_and_change_nothing(client, world) -> None:
    clerk = await _user(client, world, "user.xa2")
    cases = [
        ({}, "name what to change"),
        ({"roles": ["boss"]}, "boss is not one"),
        ({"roles": []}, "roles"),
        ({"audit_root": XA1}, "only an auditor"),
        ({"active": "no"}, "active"),
        ({"full_name": "  "}, "must not be blank"),
        ({"email": "not-an-address"}, "not an e-mail address"),
        ({"username": "doi.ten"}, "username"),
    ]
    for body, says in cases:
        r = await client.patch(f"/api/v1/users/{clerk['id']}", headers=world.auth("admin"), json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert says in r.text, (body, r.text)
    assert await _user(client, world, "user.xa2") == clerk
    assert (await client.get("/api/v1/me", headers=world.auth("xa2"))).status_code == 200


async def test_anyone_sees_their_own_tokens_but_never_a_token(client, world) -> None:
    r = await client.get("/api/v1/me/tokens", headers=world.auth("cb_tay"))
    assert r.status_code == 200
    tokens = r.json()["tokens"]
    assert len(tokens) == 1
    assert tokens[0]["state"] == "active"
    assert tokens[0]["expires_at"].endswith("+07:00")
    assert world.tokens["cb_tay"] not in r.text
    assert "hash" not in r.text
    # What one sees of one's own tokens is one's own: revoking it by its id works.
    gone = await client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=world.auth("cb_tay"))
    assert gone.status_code == 204
    assert (await client.get("/api/v1/me/tokens", headers=world.auth("cb_tay"))).status_code == 401


async def test_a_token_length_that_is_no_whole_number_is_refused(client, world) -> None:
    clerk = await _user(client, world, "user.xa2")
    for days in (True, "30", 1.5):
        r = await client.post(f"/api/v1/users/{clerk['id']}/tokens", headers=world.auth("admin"), json={"days": days})
        assert r.status_code == 422, (days, r.text)
        assert "days" in r.json()["detail"]
    tokens = (await client.get(f"/api/v1/users/{clerk['id']}/tokens", headers=world.auth("admin"))).json()["tokens"]
    assert len(tokens) == 1, "only the token the user had"


async def test_a_token_issued_while_the_user_becomes_a_signer_never_outlives_the_change(client, world) -> None:
    # Two admins at the same moment: one makes a clerk the unit's signer, the other hands the
    # clerk a token. Whichever comes first, no live token of a signer is an admin's.
    import asyncio

    for attempt in range(8):
        made = await client.post("/api/v1/users", headers=world.auth("admin"), json={
            "username": f"vanthu.dua.{attempt}", "full_name": "Văn thư", "roles": ["clerk"], "unit": XA1})
        user_id = made.json()["id"]
        promote = client.patch(f"/api/v1/users/{user_id}", headers=world.auth("admin"),
                               json={"roles": ["clerk", "signer"]})
        issue = client.post(f"/api/v1/users/{user_id}/tokens", headers=world.auth("admin"), json={"days": 1})
        promoted, issued = await asyncio.gather(promote, issue)
        assert promoted.status_code == 200, promoted.text
        assert issued.status_code in (201, 403), issued.text
        tokens = (await client.get(f"/api/v1/users/{user_id}/tokens", headers=world.auth("admin"))).json()["tokens"]
        assert [t for t in tokens if t["state"] == "active"] == [], f"attempt {attempt}: {tokens}"
        if issued.status_code == 201:
            me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {issued.json()['token']}"})
            assert me.status_code == 401
