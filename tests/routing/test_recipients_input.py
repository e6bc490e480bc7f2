"""Recipients as clients type them: every malformed entry is a 422 naming it, nothing is
sent, and naming units cannot tell a hidden unit from one that does not exist."""

from __future__ import annotations

import json
import unicodedata
import uuid

import httpx
import pytest
from sqlalchemy import text

from service.routing import MAX_RECIPIENTS
from tests.factories.pdf import metadata, upload_form

PROVINCE, XA1, XA2 = "000.00.00.H99", "000.00.01.H99", "000.00.02.H99"
DONG, KP1 = "000.01.01.H99", "000.01.02.H99"  # a branch of XA1, a branch of XA2
MISSING = "999.99.99.Z99"


def _problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status
    assert body["detail"]
    return body


async def _draft(client, world, who: str, number: str) -> str:
    up = await client.post("/api/v1/documents", headers=world.auth(who), **upload_form(metadata(number)))
    assert up.status_code == 201, up.text
    return str(up.json()["id"])


async def _registered_delivery(client, world, who: str, code: str, number: str) -> str:
    """A delivery from the province to ``who``'s unit, registered (03): ready to forward."""
    doc_id = await _draft(client, world, "tu", number)
    sent = await client.post(f"/api/v1/documents/{doc_id}/send", headers=world.auth("tu"), json={"recipients": [code]})
    assert sent.status_code == 200, sent.text
    inbox = (await client.get("/api/v1/inbox", headers=world.auth(who))).json()["items"]
    delivery_id = next(d["id"] for d in inbox if d["document_id"] == doc_id)
    reg = await client.post(f"/api/v1/deliveries/{delivery_id}/status", headers=world.auth(who),
                            json={"status": "03", "incoming_number": "1"})
    assert reg.status_code == 200, reg.text
    return str(delivery_id)


async def _deliveries(app) -> int:
    async with app.state.db.session() as s:
        return int((await s.execute(text("SELECT count(*) FROM delivery"))).scalar_one())


async def _unit_id(client, world, who: str) -> str:
    return str((await client.get("/api/v1/units/me", headers=world.auth(who))).json()["id"])


def _post(client, url: str, world, who: str, recipients: object) -> object:
    # Escaped JSON: a lone surrogate (``"\ud800"``) is valid JSON that no UTF-8 encoder takes.
    return client.post(url, headers={**world.auth(who), "Content-Type": "application/json"},
                       content=json.dumps({"recipients": recipients}, ensure_ascii=True))


MALFORMED = {  # recipients → what the answer says about them
    "a number for 'unit'": ([{"unit": 123}], "recipient 1: 'unit' must be a unit code or id"),
    "true for 'unit'": ([XA1, {"unit": True}], "recipient 2: 'unit' must be a unit code or id"),
    "an object for 'unit'": ([{"unit": {}}], "recipient 1: 'unit' must be a unit code or id"),
    "true as a recipient": ([XA1, True], "recipient 2: must be a unit code or id, or an object"),
    "a number as a recipient": ([7], "recipient 1: must be a unit code or id"),
    "null as a recipient": ([None], "recipient 1: must be a unit code or id"),
    "a list as a recipient": ([[XA1]], "recipient 1: must be a unit code or id"),
    "an empty object": ([XA1, {}], "recipient 2: name either 'unit'"),
    "both unit and under": ([{"unit": XA1, "under": XA1}], "recipient 1: name either 'unit'"),
    "a list for 'under'": ([XA1, {"under": ["x"]}], "recipient 2: 'under' must be a unit code or id"),
    "a number for 'level'": ([{"under": XA1, "level": 5}], "recipient 1: 'level' must be the name of a level"),
    "an empty level": ([{"under": XA1, "level": " "}], "recipient 1: 'level' must be the name of a level"),
    "a level with NUL": ([{"under": XA1, "level": "Chi bộ\x00"}], "recipient 1: 'level' must be the name"),
    "a very long level": ([{"under": XA1, "level": "Chi bộ" * 1000}], "recipient 1: 'level' must be the name"),
    "a string for include_root": ([{"under": XA1, "include_root": "false"}],
                                  "recipient 1: 'include_root' must be true or false"),
    "a level with 'unit'": ([{"unit": XA1, "level": "Chi bộ"}], "recipient 1: 'level' and 'include_root' go with"),
    "a misspelt field": ([{"units": XA1}], "recipient 1: unknown field 'units'"),
    "an empty code": ([XA1, "  "], "recipient 2: the code or id is empty"),
    "a code with NUL": ([XA1 + "\x00"], "recipient 1: the code or id contains control characters"),
    "a lone surrogate": (["\ud800"], "recipient 1: the code or id contains control characters"),
    "a very long code": (["0" * 100_000], "recipient 1: the code or id is longer than any unit code or id"),
    "a very long 'under'": ([{"under": "0" * 100_000}], "recipient 1: 'under' is longer than any unit code"),
    "no recipients": ([], "name at least one recipient"),
    "100,000 recipients": ([XA1] * 100_000, f"at most {MAX_RECIPIENTS} recipients in one request"),
    "more than 100 selectors": ([{"under": XA1}] * 101, "at most 100 selectors"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_recipient_is_named_and_nothing_is_sent(app, client, world, case) -> None:
    recipients, says = MALFORMED[case]
    doc_id = await _draft(client, world, "tu", "50-CV/TU")
    body = _problem(await _post(client, f"/api/v1/documents/{doc_id}/send", world, "tu", recipients), 422)
    assert says in body["detail"]
    assert len(body["detail"]) < 400, "a long or hostile value is not echoed back"
    assert await _deliveries(app) == 0
    assert (await client.get(f"/api/v1/documents/{doc_id}", headers=world.auth("tu"))).json()["sent_at"] is None


@pytest.mark.parametrize("case", ["a number for 'unit'", "true as a recipient", "a list for 'under'",
                                  "a number for 'level'", "a code with NUL", "no recipients"])
async def test_a_malformed_forward_is_named_and_nothing_is_forwarded(app, client, world, case) -> None:
    recipients, says = MALFORMED[case]
    delivery_id = await _registered_delivery(client, world, "xa1", XA1, "51-CV/TU")
    before = await _deliveries(app)
    body = _problem(await _post(client, f"/api/v1/deliveries/{delivery_id}/forward", world, "xa1", recipients), 422)
    assert says in body["detail"]
    assert await _deliveries(app) == before


async def test_every_bad_entry_is_named_by_its_position(app, client, world) -> None:
    doc_id = await _draft(client, world, "tu", "52-CV/TU")
    r = await _post(client, f"/api/v1/documents/{doc_id}/send", world, "tu",
                    [XA1, {"unit": 1}, DONG, {"under": XA1, "level": 5}])
    detail = _problem(r, 422)["detail"]
    assert "recipient 2: 'unit' must be a unit code or id" in detail
    assert "recipient 4: 'level' must be the name of a level" in detail
    assert "recipient 1" not in detail
    assert "recipient 3" not in detail
    assert await _deliveries(app) == 0


async def test_duplicated_entries_deliver_once(app, client, world) -> None:
    # The same unit by code, in lower case, by id and as an object; the same selector 100 times.
    doc_id = await _draft(client, world, "tu", "53-CV/TU")
    xa1_id = await _unit_id(client, world, "xa1")
    recipients = [XA1] * 9_000 + [XA1.lower(), xa1_id, {"unit": XA1}] + [{"under": XA1}] * 100
    r = await _post(client, f"/api/v1/documents/{doc_id}/send", world, "tu", recipients)
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["already_sent"]) == (4, 0)
    assert await _deliveries(app) == 4


async def test_a_level_typed_in_nfd_is_the_same_level(app, client, world) -> None:
    doc_id = await _draft(client, world, "tu", "54-CV/TU")
    level = unicodedata.normalize("NFD", "Chi bộ")
    assert level != "Chi bộ"
    r = await _post(client, f"/api/v1/documents/{doc_id}/send", world, "tu", [{"under": PROVINCE, "level": level}])
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 4, "every branch (Chi bộ) of the province"
    again = await _post(client, f"/api/v1/documents/{doc_id}/send", world, "tu",
                        [{"under": XA1, "level": " chi  BỘ "}])
    assert (again.json()["created"], again.json()["already_sent"]) == (0, 3)


async def test_a_selector_that_reaches_no_unit_is_refused_and_the_document_stays_unsent(app, client, world) -> None:
    # A level typed without its diacritics, or one that has no unit there, reached no one and
    # still marked the document sent, so that it could no longer be signed.
    doc_id = await _draft(client, world, "tu", "55-CV/TU")
    for selector, says in (({"under": XA1, "level": "chi bo"}, '"Chi bộ"'),
                           ({"under": DONG}, "has no units below it"),
                           ({"under": PROVINCE, "level": "Tỉnh ủy"}, '"Đảng ủy xã"')):
        r = await _post(client, f"/api/v1/documents/{doc_id}/send", world, "tu", [XA2, selector])
        body = _problem(r, 422)
        assert "reaches no unit" in body["detail"]
        assert says in body["detail"], body["detail"]
    assert await _deliveries(app) == 0
    doc = (await client.get(f"/api/v1/documents/{doc_id}", headers=world.auth("tu"))).json()
    assert doc["sent_at"] is None, "still a draft: it can be signed and sent"
    ok = await _post(client, f"/api/v1/documents/{doc_id}/send", world, "tu", [{"under": XA1, "level": "Chi bộ"}])
    assert ok.json()["created"] == 3


def _comparable(r: httpx.Response, typed: str) -> tuple[int, str, object]:
    """The answer minus what only echoes the request: its URL, its id, the key as typed."""
    body = {k: v for k, v in r.json().items() if k not in ("instance", "request_id")}
    return r.status_code, r.headers["content-type"], json.loads(json.dumps(body).replace(typed, "<key>"))


async def _assert_hidden_like_missing(client, world, url: str, who: str, hidden: object, missing: object,
                                      hidden_key: str, missing_key: str) -> dict:
    seen = await _post(client, url, world, who, [hidden])
    made_up = await _post(client, url, world, who, [missing])
    body = _problem(seen, 422)
    assert _comparable(seen, hidden_key) == _comparable(made_up, missing_key)
    assert body["unknown"] == [hidden_key], "the key as typed, not the unit's code"
    return body


async def test_forwarding_cannot_tell_a_hidden_unit_from_a_missing_one(app, client, world) -> None:
    # A branch of commune 1 neither sees commune 2 (its GET is a 404) nor may send to it.
    assert (await client.get(f"/api/v1/units/{XA2}", headers=world.auth("cb_dong"))).status_code == 404
    delivery_id = await _registered_delivery(client, world, "cb_dong", DONG, "55-CV/TU")
    before = await _deliveries(app)
    url = f"/api/v1/deliveries/{delivery_id}/forward"
    xa2_id = await _unit_id(client, world, "xa2")
    fake_id = uuid.uuid4().hex
    cases = [(XA2, MISSING), (XA2.lower(), MISSING.lower()), (xa2_id, fake_id), (KP1, MISSING)]
    for hidden, missing in cases:
        body = await _assert_hidden_like_missing(client, world, url, "cb_dong", hidden, missing, hidden, missing)
        assert "Hồng Hà" not in body["detail"]
        assert "khu phố" not in body["detail"]
        assert "unknown recipient units" in body["detail"]
    await _assert_hidden_like_missing(client, world, url, "cb_dong", {"under": XA2}, {"under": MISSING}, XA2, MISSING)
    assert await _deliveries(app) == before


async def test_sending_cannot_tell_a_hidden_unit_from_a_missing_one(app, client, world) -> None:
    doc_id = await _draft(client, world, "cb_dong", "5-CV/CB")
    url = f"/api/v1/documents/{doc_id}/send"
    xa2_id = await _unit_id(client, world, "xa2")
    for hidden, missing in [(XA2, MISSING), (KP1, MISSING), (xa2_id, uuid.uuid4().hex)]:
        body = await _assert_hidden_like_missing(client, world, url, "cb_dong", hidden, missing, hidden, missing)
        assert "Hồng Hà" not in body["detail"]
        assert "khu phố" not in body["detail"]
    await _assert_hidden_like_missing(client, world, url, "cb_dong", {"under": KP1}, {"under": MISSING}, KP1, MISSING)
    # Mixed with units it may send to, the hidden one is still just unknown.
    r = await _post(client, url, world, "cb_dong", ["000.02.01.H99", XA2, XA1, MISSING])
    assert _problem(r, 422)["unknown"] == [XA2, MISSING]
    assert await _deliveries(app) == 0


async def test_a_unit_the_caller_may_know_of_is_refused_naming_the_rule(app, client, world) -> None:
    # The caller's own unit: known to it, outside every rule; the refusal names both.
    doc_id = await _draft(client, world, "cb_dong", "6-CV/CB")
    r = await _post(client, f"/api/v1/documents/{doc_id}/send", world, "cb_dong", [DONG, XA1])
    body = _problem(r, 403)
    assert body["refused"] == [DONG]
    assert "parent" in body["detail"]
    assert f"{DONG} (Chi bộ thôn Đông)" in body["detail"]
    delivery_id = await _registered_delivery(client, world, "xa1", XA1, "56-CV/TU")
    r = await _post(client, f"/api/v1/deliveries/{delivery_id}/forward", world, "xa1", [XA1])
    body = _problem(r, 403)
    assert "descendants" in body["detail"]
    assert body["refused"] == [XA1]
    assert await _deliveries(app) == 1, "only the province's delivery to commune 1"


async def test_a_selector_anchored_outside_the_callers_subtree_is_refused_whatever_lies_below(
        app, client, world) -> None:
    # Under the province (commune 1's parent, which it may send to) lie commune 2's branches;
    # under commune 2 (a sibling) one branch of level "Chi bộ" and none of level "Tổ đảng".
    doc_id = await _draft(client, world, "xa1", "7-CV/ĐU")
    url = f"/api/v1/documents/{doc_id}/send"
    answers = {}
    for anchor, level in [(PROVINCE, None), (PROVINCE, "Chi bộ"), (XA2, "Chi bộ"), (XA2, "Tổ đảng")]:
        selector = {"under": anchor, **({"level": level} if level else {})}
        body = _problem(await _post(client, url, world, "xa1", [selector]), 403)
        assert body["selector"] == anchor
        assert "name those units one by one" in body["detail"]
        answers[(anchor, level)] = body["detail"]
    # Whether commune 2 has branches, and of which level, does not change the answer.
    assert answers[(XA2, "Chi bộ")] == answers[(XA2, "Tổ đảng")]
    assert answers[(PROVINCE, None)] == answers[(PROVINCE, "Chi bộ")]
    assert KP1 not in str(answers)
    assert "khu phố" not in str(answers)
    assert await _deliveries(app) == 0


async def test_a_stricter_policy_names_the_refused_units_below(settings) -> None:
    # With "parent" only, the commune's own branches are units it sees but may not send to.
    from service.api.app import create_app
    from tests.conftest import build_world

    app = create_app(settings.model_copy(update={"routing_rules": "parent"}))
    async with app.router.lifespan_context(app):
        world = await build_world(app.state.db)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://docexchange.test") as client:
            doc_id = await _draft(client, world, "xa1", "8-CV/ĐU")
            url = f"/api/v1/documents/{doc_id}/send"
            refused = _problem(await _post(client, url, world, "xa1", [DONG]), 403)
            assert refused["rules"] == ["parent"]
            assert refused["refused"] == [DONG]
            assert "Chi bộ thôn Đông" in refused["detail"]
            await _assert_hidden_like_missing(client, world, url, "xa1", XA2, MISSING, XA2, MISSING)
            ok = await _post(client, url, world, "xa1", [PROVINCE])
            assert ok.status_code == 200, ok.text


async def test_a_forward_names_units_the_deployment_policy_lets_it_send_to(app, client, world) -> None:
    # Called below the route: the forward route does not hand the deployment's policy on yet.
    from service import documents
    from service.auth import authenticate
    from service.routing import RecipientSelector, RoutingRefusedError
    from service.units import UnknownUnitsError

    delivery_id = await _registered_delivery(client, world, "xa1", XA1, "57-CV/TU")
    async with app.state.db.session() as s:
        xa1 = await authenticate(s, world.tokens["xa1"])
        # Commune 2 is a sibling: commune 1 may send to it, so knows it; forwarding is still refused.
        with pytest.raises(RoutingRefusedError) as refused:
            await documents.forward_delivery(s, xa1, delivery_id, [RecipientSelector(XA2)], app.state.policy)
        assert refused.value.extra["refused"] == [XA2]
        assert "Hồng Hà" in refused.value.detail
        # A branch of commune 2 it neither sees nor may send to; and, without the policy, commune 2.
        with pytest.raises(UnknownUnitsError):
            await documents.forward_delivery(s, xa1, delivery_id, [RecipientSelector(KP1)], app.state.policy)
        with pytest.raises(UnknownUnitsError):
            await documents.forward_delivery(s, xa1, delivery_id, [RecipientSelector(XA2)])
