"""Listing parameters a clerk (or a fuzzer) gets wrong: always a problem+json, never a 500."""

from __future__ import annotations

import base64
import json

import pytest

from tests.factories.pdf import make_pdf, metadata, upload_form

LISTINGS = ["/api/v1/inbox", "/api/v1/outbox", "/api/v1/documents/{doc}/deliveries"]


def _cursor(value: object) -> str:
    """A cursor the way the service writes one, around any JSON."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _reader(world, path: str) -> dict[str, str]:
    """Who has something in the listing: the commune its inbox, the province what it sent."""
    return world.auth("xa1" if "inbox" in path else "tu")


def _problem(r, field: str) -> dict:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 422
    assert field in json.dumps(body), "the problem must name the parameter to correct"
    return body


async def _sent(client, world, count: int) -> str:
    """``count`` documents from the province to commune 1; the id of the last."""
    doc_id = ""
    for i in range(count):
        up = await client.post("/api/v1/documents", headers=world.auth("tu"),
                               **upload_form(metadata(f"{i + 1}-CV/TU"), pdf=make_pdf(str(i))))
        doc_id = up.json()["id"]
        sent = await client.post(f"/api/v1/documents/{doc_id}/send", headers=world.auth("tu"),
                                 json={"recipients": ["000.00.01.H99"]})
        assert sent.status_code == 200, sent.text
    return doc_id


FORGED = {
    "three values of the wrong types": [1, "xTy", "id"],
    "a year-1 time without a row id": ["0000-01-01T00:00:00+00:00", "x"],
    "a time without offset": ["2026-11-22T10:00:00", "x" * 32],
    "a time in another zone": ["2026-11-22T10:00:00+07:00", "x" * 32],
    "a dict for the time": [{"a": 1}, "x" * 32],
    "a list for the time": [[1], "x" * 32],
    "nulls": [None, None],
    "a huge number": [10**30, "x"],
    "a boolean urgency": [True, "2026-11-22T10:00:00+00:00", "x" * 32],
    "an urgency out of range": [9, "2026-11-22T10:00:00+00:00", "x" * 32],
    "an id with odd characters": ["2026-11-22T10:00:00+00:00", "x'; --"],
    "an object": {"after": "x"},
    "a string": "page 2",
    "too few values": ["2026-11-22T10:00:00+00:00"],
}
NOT_JSON = {
    "deep nesting": base64.urlsafe_b64encode(b"[" * 3000).decode(),
    "not base64": "!!not*base64!!",
    "base64 of bytes that are not text": base64.urlsafe_b64encode(b"\xff\xfe\x00[").decode().rstrip("="),
    "one character too many for base64": "abcde",
    "very long": "A" * 20_000,
}


@pytest.mark.parametrize("path", LISTINGS)
@pytest.mark.parametrize("cursor", [_cursor(v) for v in FORGED.values()] + list(NOT_JSON.values()),
                         ids=list(FORGED) + list(NOT_JSON))
async def test_a_cursor_the_service_did_not_issue_asks_to_start_again(client, world, path, cursor) -> None:
    doc_id = await _sent(client, world, 1)
    r = await client.get(path.format(doc=doc_id), headers=_reader(world, path), params={"cursor": cursor})
    body = _problem(r, "cursor")
    assert "start again from the first page" in body["detail"]


@pytest.mark.parametrize("path", LISTINGS)
async def test_a_cursor_the_service_issued_leads_to_the_next_page(client, world, path) -> None:
    doc_id = await _sent(client, world, 3)
    url, who = path.format(doc=doc_id), _reader(world, path)
    if "deliveries" in path:  # one document to three branches gives a deliveries list to page through
        await client.post(f"/api/v1/documents/{doc_id}/send", headers=who,
                          json={"recipients": ["000.01.01.H99", "000.02.01.H99"]})
    first = (await client.get(url, headers=who, params={"limit": 2})).json()
    second = await client.get(url, headers=who, params={"limit": 2, "cursor": first["next_cursor"]})
    assert second.status_code == 200, second.text
    assert len(first["items"]) == 2
    assert len(second.json()["items"]) == 1
    assert second.json()["next_cursor"] is None
    ids = [item["id"] for item in first["items"] + second.json()["items"]]
    assert len(set(ids)) == 3


@pytest.mark.parametrize("path", ["/api/v1/inbox", "/api/v1/outbox"])
@pytest.mark.parametrize("params", [{"since": "0001-01-01"}, {"until": "9999-12-31"},
                                    {"since": "0001-01-01", "until": "9999-12-31"}])
async def test_the_ends_of_the_calendar_mean_no_limit(client, world, path, params) -> None:
    await _sent(client, world, 1)
    r = await client.get(path, headers=_reader(world, path), params=params)
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 1


async def test_dates_keep_to_vietnam_days(client, world) -> None:
    await _sent(client, world, 1)
    ours = await client.get("/api/v1/outbox", headers=world.auth("tu"))
    day = ours.json()["items"][0]["created_at"][:10]  # shown in Vietnam time
    on_the_day = await client.get("/api/v1/outbox", headers=world.auth("tu"), params={"since": day, "until": day})
    assert len(on_the_day.json()["items"]) == 1
    after = await client.get("/api/v1/outbox", headers=world.auth("tu"), params={"since": "9999-12-30"})
    assert after.json()["items"] == []


BAD_PARAMS = {
    "since after until": ({"since": "2026-12-01", "until": "2026-11-01"}, "since", "swap"),
    "a day that does not exist": ({"since": "2026-02-30"}, "since", "day"),
    "a year past 9999": ({"until": "10000-01-01"}, "until", "date"),
    "a date with a time of day": ({"since": "2026-11-22T10:00:00"}, "since", "date"),
    "words for a date": ({"until": "tomorrow"}, "until", "date"),
    "a negative limit": ({"limit": "-1"}, "limit", "greater than or equal to 1"),
    "a zero limit": ({"limit": "0"}, "limit", "greater than or equal to 1"),
    "a huge limit": ({"limit": str(10**9)}, "limit", "less than or equal to 500"),
    "a limit that is not a number": ({"limit": "ten"}, "limit", "integer"),
    "an unknown status": ({"status": "99"}, "status", "use one of 01, 02"),
    "a status that is not a code": ({"status": "arrived"}, "status", "pattern"),
    "an unknown urgency": ({"urgency": "7"}, "urgency", "less than or equal to 3"),
    "an urgency that is not a number": ({"urgency": "Khẩn"}, "urgency", "integer"),
}


@pytest.mark.parametrize("path", ["/api/v1/inbox", "/api/v1/outbox"])
@pytest.mark.parametrize("case", list(BAD_PARAMS))
async def test_filters_that_cannot_be_meant_are_refused(client, world, path, case) -> None:
    params, field, words = BAD_PARAMS[case]
    r = await client.get(path, headers=world.auth("xa1"), params=params)
    assert words in _problem(r, field)["detail"]


async def test_control_characters_in_a_search_are_read_as_spaces(client, world) -> None:
    await _sent(client, world, 1)

    async def found(q: str) -> int:
        r = await client.get("/api/v1/outbox", headers=world.auth("tu"), params={"q": q})
        assert r.status_code == 200, r.text
        return len(r.json()["items"])

    assert await found("\x00CV/TU\x07") == 1
    assert await found("CV\x00TU") == 0


async def test_the_outbox_by_status_shows_the_documents_some_recipient_is_at(client, world) -> None:
    returned = await _sent(client, world, 1)
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata("9-CV/TU")))
    other = up.json()["id"]
    assert (await client.post(f"/api/v1/documents/{other}/send", headers=world.auth("tu"),
                              json={"recipients": ["000.00.02.H99"]})).status_code == 200
    delivery = (await client.get(f"/api/v1/documents/{returned}/deliveries", headers=world.auth("tu"))).json()
    back = await client.post(f"/api/v1/deliveries/{delivery['items'][0]['id']}/status", headers=world.auth("xa1"),
                             json={"status": "02", "note": "Sai thể thức"})
    assert back.status_code == 200, back.text
    listed = (await client.get("/api/v1/outbox?status=02", headers=world.auth("tu"))).json()["items"]
    assert [d["id"] for d in listed] == [returned]
    everything = (await client.get("/api/v1/outbox", headers=world.auth("tu"))).json()["items"]
    assert {d["id"] for d in everything} == {returned, other}


async def test_one_documents_deliveries_filter_by_day_and_refuse_document_filters(client, world) -> None:
    doc = await _sent(client, world, 1)
    url = f"/api/v1/documents/{doc}/deliveries"
    today = (await client.get(url, headers=world.auth("tu"))).json()["items"][0]["created_at"][:10]
    assert len((await client.get(f"{url}?since={today}&until={today}", headers=world.auth("tu"))).json()["items"]) == 1
    assert (await client.get(f"{url}?since=9999-12-30", headers=world.auth("tu"))).json()["items"] == []
    for extra in ("q=ke+hoach", "urgency=1"):
        _problem(await client.get(f"{url}?{extra}", headers=world.auth("tu")), extra.split("=")[0])
