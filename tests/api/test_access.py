"""A user of another unit gets no data from any endpoint, and cannot tell
whether an id exists: a foreign id and a made-up one get the same answer."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest
from sqlalchemy import text, update
from sqlmodel import col

from service.auth import revoke_token, token_hash
from service.storage.types import utcnow
from service.units.models import ApiToken
from tests.factories.pdf import make_pdf, metadata, upload_form

BODIES = {  # a valid body per route, so the lookup (not validation) decides the answer
    "/status": {"status": "03", "incoming_number": "1"},
    "/forward": {"recipients": ["000.01.02.H99"]},
    "/send": {"recipients": ["000.00.02.H99"]},
    "/recall": {"reason": "thu hồi"},
    "/tokens": {"label": "x"},
}


async def _private_objects(client, world) -> dict[str, str]:
    """A document of the province sent to commune 1 only, with an attachment."""
    form = upload_form(metadata("20-CV/TU"), attachments=[("phuluc.pdf", make_pdf("Phu luc"))])
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **form)
    doc = up.json()
    await client.post(f"/api/v1/documents/{doc['id']}/send", headers=world.auth("tu"),
                      json={"recipients": ["000.00.01.H99"]})
    inbox = (await client.get("/api/v1/inbox", headers=world.auth("xa1"))).json()["items"]
    unit = (await client.get("/api/v1/units/me", headers=world.auth("xa1"))).json()
    return {"doc_id": doc["id"], "att_id": doc["attachments"][0]["id"], "delivery_id": inbox[0]["id"],
            "key": unit["code"], "id": inbox[0]["id"]}


def _routes(app) -> list[tuple[str, str]]:
    """Every documented endpoint that takes an id, from the OpenAPI document."""
    paths = app.openapi()["paths"]
    return [(m.upper(), p) for p, ops in sorted(paths.items()) if p.startswith("/api/v1") and "{" in p
            for m in sorted(ops)]


def _fill(path: str, values: dict[str, str], fake: bool) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        return uuid.uuid4().hex if fake or name not in values else values[name]

    return re.sub(r"\{(\w+)\}", sub, path)


def _comparable(resp) -> tuple[int, object]:
    """Status and body, minus what only echoes the request (its URL, ids it named)."""
    if not resp.headers.get("content-type", "").startswith(("application/json", "application/problem+json")):
        return resp.status_code, resp.content
    body = resp.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("instance", "request_id")}
    text = str(body)
    for part in resp.request.url.path.split("/"):
        if len(part) >= 8:
            text = text.replace(part, "<id>")
    return resp.status_code, text


async def test_other_units_learn_nothing_from_any_endpoint(app, client, world) -> None:
    ids = await _private_objects(client, world)
    routes = _routes(app)
    assert len(routes) >= 10, "every id-taking endpoint must be covered"
    for method, path in routes:
        body = next((b for suffix, b in BODIES.items() if path.endswith(suffix)), None)
        kwargs = {"json": body} if method in ("POST", "PATCH") else {}
        real = await client.request(method, _fill(path, ids, fake=False), headers=world.auth("xa2"), **kwargs)
        fake = await client.request(method, _fill(path, ids, fake=True), headers=world.auth("xa2"), **kwargs)
        assert real.status_code in (403, 404, 422), f"{method} {path} answered {real.status_code}"
        assert _comparable(real) == _comparable(fake), f"{method} {path} tells a foreign id from a made-up one"
        assert "20-CV/TU" not in real.text
        assert "Tân Lập" not in real.text


async def test_listings_show_only_the_callers_unit(client, world) -> None:
    ids = await _private_objects(client, world)
    for who in ("xa2", "cb_kp1"):
        inbox = await client.get("/api/v1/inbox", headers=world.auth(who))
        outbox = await client.get("/api/v1/outbox", headers=world.auth(who))
        assert inbox.json()["items"] == []
        assert outbox.json()["items"] == []
        assert ids["doc_id"] not in inbox.text + outbox.text


async def test_every_api_endpoint_needs_a_token(app, client) -> None:
    for method, path in _routes(app) + [("GET", "/api/v1/inbox"), ("POST", "/api/v1/documents")]:
        r = await client.request(method, _fill(path, {}, fake=True))
        assert r.status_code == 401, f"{method} {path} without a token answered {r.status_code}"
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_revoked_and_unknown_tokens_are_refused(client, world) -> None:
    me = await client.get("/api/v1/me", headers=world.auth("admin"))
    assert me.status_code == 200
    user = await client.post("/api/v1/users", headers=world.auth("admin"),
                             json={"username": "tichhop.qlvb", "full_name": "Hệ thống QLVB",
                                   "roles": ["clerk"], "is_service": True})
    assert user.status_code == 201, user.text
    tok = await client.post(f"/api/v1/users/{user.json()['id']}/tokens", headers=world.auth("admin"),
                            json={"label": "QLVB", "days": 30})
    token = tok.json()["token"]
    ok = await client.get("/api/v1/inbox", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    await client.delete(f"/api/v1/tokens/{tok.json()['id']}", headers=world.auth("admin"))
    revoked = await client.get("/api/v1/inbox", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]
    unknown = await client.get("/api/v1/inbox", headers={"Authorization": "Bearer dx_nope"})
    assert unknown.status_code == 401


async def test_two_authorization_headers_are_refused_whichever_comes_first(client, world) -> None:
    # A proxy in front that reads the last header would see one caller and the service another.
    for pair in ((world.tokens["admin"], world.tokens["cb_tay"]), (world.tokens["cb_tay"], world.tokens["admin"])):
        headers = [("Authorization", f"Bearer {t}") for t in pair]
        r = await client.get("/api/v1/users", headers=headers)
        assert r.status_code == 401, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "one Authorization header" in r.json()["detail"]


async def test_a_token_in_use_while_it_is_revoked_is_refused_right_after(client, world) -> None:
    # Requests checking the token at the moment of revocation must not put it back in this
    # process's cache: once the DELETE has answered, the token is refused, not for 10 s more.
    user = await client.post("/api/v1/users", headers=world.auth("admin"),
                             json={"username": "tichhop.race", "full_name": "Hệ thống QLVB",
                                   "roles": ["clerk"], "is_service": True})
    assert user.status_code == 201, user.text
    for attempt in range(12):
        tok = (await client.post(f"/api/v1/users/{user.json()['id']}/tokens", headers=world.auth("admin"),
                                 json={"label": f"QLVB {attempt}", "days": 30})).json()
        bearer = {"Authorization": f"Bearer {tok['token']}"}
        revoke = client.delete(f"/api/v1/tokens/{tok['id']}", headers=world.auth("admin"))
        answers = await asyncio.gather(*(client.get("/api/v1/me", headers=bearer) for _ in range(6)), revoke)
        assert answers[-1].status_code == 204
        after = await client.get("/api/v1/me", headers=bearer)
        assert after.status_code == 401, f"attempt {attempt}: the revoked token still worked"


async def test_a_token_revoked_elsewhere_changes_nothing_even_before_the_cache_forgets_it(
        settings, app, client, world) -> None:
    # Two API processes on one database (serve --workers 2), and the operator's command line:
    # a stolen admin token, revoked through one, must not issue itself a fresh token through
    # the other in the seconds the other still remembers it — that would undo the revocation.
    from service.api.app import create_app
    from service.auth import revoke_token

    me = (await client.get("/api/v1/me", headers=world.auth("admin"))).json()["user_id"]
    for revoked_by in ("api", "operator"):
        issued = (await client.post(f"/api/v1/users/{me}/tokens", headers=world.auth("admin"), json={"days": 1})).json()
        stolen = {"Authorization": f"Bearer {issued['token']}"}
        second = create_app(settings)
        async with second.router.lifespan_context(second), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=second), base_url="http://docexchange.test") as other:
            assert (await other.get("/api/v1/me", headers=stolen)).status_code == 200  # remembered there
            if revoked_by == "api":
                assert (await client.delete(f"/api/v1/tokens/{issued['id']}", headers=stolen)).status_code == 204
            else:
                async with app.state.db.session() as s:  # what `docexchange tokens revoke` does
                    await revoke_token(s, issued["id"], unit_id=None)
                    await s.commit()
            minted = await other.post(f"/api/v1/users/{me}/tokens", headers=stolen, json={"days": 3650})
            assert minted.status_code == 401, f"revoked through the {revoked_by}: {minted.text}"
            assert "revoked" in minted.json()["detail"]
            upload = await other.post("/api/v1/documents", headers=stolen, **upload_form(metadata("77-CV/TU")))
            assert upload.status_code == 401
    tokens = (await client.get("/api/v1/me/tokens", headers=world.auth("admin"))).json()["tokens"]
    assert [t["state"] for t in tokens].count("active") == 1, "only the admin's own first token is live"


@pytest.mark.parametrize("cut_off", ["revoked", "deactivated"])
async def test_an_upload_under_way_when_its_token_is_cut_off_registers_nothing(app, client, world, cut_off) -> None:
    # The token is checked when the request starts; a 300 MB file takes minutes to arrive, and
    # what it changes must still be refused if the token was revoked (or the user deactivated)
    # meanwhile, by any process.
    users = (await client.get("/api/v1/users", headers=world.auth("admin"))).json()["users"]
    clerk = next(u for u in users if u["username"] == "user.xa1")
    token_id = (await client.get("/api/v1/me/tokens", headers=world.auth("xa1"))).json()["tokens"][0]["id"]
    form = httpx.Request("POST", "http://x", **upload_form(metadata("88-CV/ĐU")))
    body, content_type = form.read(), form.headers["content-type"]

    async def arriving_slowly():
        yield body[:200]
        if cut_off == "revoked":
            async with app.state.db.session() as s:  # as `docexchange tokens revoke` does, in its own process
                await revoke_token(s, token_id, unit_id=None)
                await s.commit()
        else:
            off = await client.patch(f"/api/v1/users/{clerk['id']}", headers=world.auth("admin"),
                                     json={"active": False})
            assert off.status_code == 200, off.text
        yield body[200:]

    r = await client.post("/api/v1/documents", content=arriving_slowly(),
                          headers={**world.auth("xa1"), "content-type": content_type})
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "nothing was changed" in r.json()["detail"]
    outbox = await client.get("/api/v1/outbox", headers=world.auth("tu"))
    assert "88-CV/ĐU" not in outbox.text
    async with app.state.db.session() as s:
        assert (await s.execute(text("SELECT count(*) FROM document"))).scalar_one() == 0


async def test_a_token_revoked_by_another_process_stops_working_within_the_cache_time(settings) -> None:
    # Tokens checked a moment ago are answered from memory (DOCEX_AUTH_CACHE_S); a revocation
    # that does not go through this process (the CLI, another API process) must still win.
    from service.api.app import create_app
    from tests.conftest import build_world

    app = create_app(settings.model_copy(update={"auth_cache_s": 0.5}))
    async with app.router.lifespan_context(app):
        world = await build_world(app.state.db)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://docexchange.test") as client:
            assert (await client.get("/api/v1/me", headers=world.auth("cb_tay"))).status_code == 200
            async with app.state.db.session() as s:
                await s.execute(update(ApiToken).values(revoked_at=utcnow()).where(
                    col(ApiToken.token_hash) == token_hash(world.tokens["cb_tay"])))
                await s.commit()
            await asyncio.sleep(0.6)
            refused = await client.get("/api/v1/me", headers=world.auth("cb_tay"))
            assert refused.status_code == 401
            assert "revoked" in refused.json()["detail"]
            assert (await client.get("/api/v1/me", headers=world.auth("cb_dong"))).status_code == 200


@pytest.mark.parametrize("who", ["cb_dong", "xa1_signer"])
async def test_roles_limit_actions(client, world, who) -> None:
    # A signer cannot register documents; a branch clerk cannot manage people.
    if who == "xa1_signer":
        r = await client.post("/api/v1/documents", headers=world.auth(who), **upload_form(metadata()))
        assert r.status_code == 403
        assert "clerk" in r.json()["detail"]
    else:
        r = await client.get("/api/v1/users", headers=world.auth(who))
        assert r.status_code == 403


async def test_a_commune_admin_cannot_hand_out_a_province_wide_reach(client, world) -> None:
    # An inspector seated in a commune may audit the whole province; a token for them opens the
    # province's documents, so the commune's admin neither issues nor revokes theirs.
    async def create(who: str, body: dict) -> str:
        r = await client.post("/api/v1/users", headers=world.auth(who), json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def bearer(who: str, user_id: str) -> dict[str, str]:
        r = await client.post(f"/api/v1/users/{user_id}/tokens", headers=world.auth(who),
                              json={"label": "t", "days": 1})
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    commune_admin = await bearer("admin", await create("admin", {
        "username": "quantri.xa1", "full_name": "Quản trị xã", "roles": ["admin"], "unit": "000.00.01.H99"}))
    inspector = await create("admin", {"username": "thanhtra.xa1", "full_name": "Thanh tra viên",
                                       "roles": ["auditor"], "unit": "000.00.01.H99", "audit_root": "000.00.00.H99"})
    local = await create("admin", {"username": "kiemtra.xa1", "full_name": "Kiểm tra xã", "roles": ["auditor"],
                                   "unit": "000.00.01.H99", "audit_root": "000.00.01.H99"})
    refused = await client.post(f"/api/v1/users/{inspector}/tokens", headers=commune_admin,
                                json={"label": "t", "days": 1})
    assert refused.status_code == 404, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    province_token = (await client.post(f"/api/v1/users/{inspector}/tokens", headers=world.auth("admin"),
                                        json={"label": "t", "days": 1})).json()
    gone = await client.delete(f"/api/v1/tokens/{province_token['id']}", headers=commune_admin)
    assert gone.status_code == 404
    assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {province_token['token']}"})
            ).status_code == 200
    # An auditor whose reach stays in the commune is the commune admin's to manage.
    ok = await client.post(f"/api/v1/users/{local}/tokens", headers=commune_admin, json={"label": "t", "days": 1})
    assert ok.status_code == 201, ok.text


async def test_no_administrator_issues_a_token_that_signs_in_a_leaders_name(client, world) -> None:
    # A signer's token signs with the signer's key, recorded as theirs: an admin of the unit
    # who could mint one could sign as the leader without the leader knowing.
    users = (await client.get("/api/v1/users", headers=world.auth("admin"))).json()["users"]
    leader = next(u for u in users if "signer" in u["roles"])
    refused = await client.post(f"/api/v1/users/{leader['id']}/tokens", headers=world.auth("admin"),
                                json={"label": "ký thay", "days": 1})
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert f"docexchange tokens create --username {leader['username']}" in refused.json()["detail"]
    clerk = next(u for u in users if u["roles"] == ["clerk"])
    assert (await client.post(f"/api/v1/users/{clerk['id']}/tokens", headers=world.auth("admin"),
                              json={"label": "máy văn thư", "days": 1})).status_code == 201
