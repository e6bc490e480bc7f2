"""The error contract where FastAPI and Starlette answer by themselves: byte ranges of a
download, a method an address does not take, HEAD, a JSON body that cannot be read, and
a client's X-Request-ID. Every refusal is a problem document a clerk can act on."""

from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client import REGISTRY

from service.api.files import RangeRefused, byte_ranges
from tests.factories.pdf import metadata, upload_form

PROBLEM = "application/problem+json"
STATUS_CHANGE = "/api/v1/deliveries/00000000000000000000000000/status"


def _assert_problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status
    assert body["request_id"] == r.headers["x-request-id"]
    return body


async def _uploaded(client, world) -> dict:
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata()))
    assert r.status_code == 201, r.text
    return r.json()


async def _downloads(client, world) -> dict[str, bytes]:
    """Each download address of one uploaded document, with a whole file it serves (the
    evidence ZIP is built anew for each request, so only its kind stays the same)."""
    doc = await _uploaded(client, world)
    full = {}
    for url in (f"/api/v1/documents/{doc['id']}/content", f"/api/v1/documents/{doc['id']}/evidence"):
        r = await client.get(url, headers=world.auth("xa1"))
        assert r.status_code == 200, r.text
        full[url] = r.content
    return full


def _files(settings) -> set:
    return {p for p in settings.blob_dir.rglob("*") if p.is_file()}


# -- byte ranges ----------------------------------------------------------------------------------
@pytest.mark.parametrize("header", ["bytes=abc", "items=0-5", "bytes=", "bytes=0-5,abc", "bytes 0-5", "bytes=--3"])
async def test_a_range_header_that_is_not_a_bytes_range_is_ignored_and_the_whole_file_sent(
        client, world, header) -> None:
    for url, whole in (await _downloads(client, world)).items():
        r = await client.get(url, headers={**world.auth("xa1"), "Range": header})
        assert r.status_code == 200, (url, r.text)
        assert "content-range" not in r.headers
        if url.endswith("/content"):
            assert r.content == whole
        else:
            assert r.content.startswith(b"PK")


@pytest.mark.parametrize(("header", "words"), [("bytes=999999-", "lies past its end"),
                                                ("bytes=999999-1000000,2000000-", "lies past its end"),
                                                ("bytes=5-1", "the range 5-1 ends before it starts"),
                                                ("bytes=-0", "lies past its end")])
async def test_a_range_the_file_cannot_satisfy_is_a_416_problem_with_its_size(client, world, settings,
                                                                               header, words) -> None:
    downloads = await _downloads(client, world)
    before = _files(settings)
    for url, whole in downloads.items():
        r = await client.get(url, headers={**world.auth("xa1"), "Range": header})
        body = _assert_problem(r, 416)
        assert words in body["detail"]
        assert "bytes=<first>-<last>" in body["detail"]
        size = len(whole) if url.endswith("/content") else int(r.headers["content-range"].split("/")[1])
        assert r.headers["content-range"] == f"bytes */{size}"
    assert _files(settings) == before, "the evidence ZIP built for a refused answer is removed all the same"


async def test_valid_ranges_are_still_served_in_part(client, world) -> None:
    doc = await _uploaded(client, world)
    url, auth = f"/api/v1/documents/{doc['id']}/content", world.auth("xa1")
    whole = (await client.get(url, headers=auth)).content
    size = len(whole)
    for header, first, last in (("bytes=0-9", 0, 9), ("bytes=-5", size - 5, size - 1),
                                (f"bytes={size - 3}-{size + 100}", size - 3, size - 1),
                                ("bytes=0-3,999999-", 0, 3)):
        r = await client.get(url, headers={**auth, "Range": header})
        assert r.status_code == 206, (header, r.text)
        assert r.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert r.content == whole[first:last + 1]
    several = await client.get(url, headers={**auth, "Range": "bytes=0-1,5-6"})
    assert several.status_code == 206
    assert several.headers["content-type"].startswith("multipart/byteranges")


async def test_a_range_under_an_if_range_of_another_version_is_ignored(client, world) -> None:
    doc = await _uploaded(client, world)
    url, auth = f"/api/v1/documents/{doc['id']}/content", world.auth("xa1")
    r = await client.get(url, headers={**auth, "Range": "bytes=999999-", "If-Range": '"another-version"'})
    assert r.status_code == 200
    etag = r.headers["etag"]
    matching = await client.get(url, headers={**auth, "Range": "bytes=0-3", "If-Range": etag})
    assert matching.status_code == 206


def test_byte_ranges_reads_the_range_header_as_rfc_9110_writes_it() -> None:
    assert byte_ranges("bytes=0-0", 10) == [(0, 0)]
    assert byte_ranges("BYTES = 2-, ,-3", 10) == [(2, 9), (7, 9)]
    assert byte_ranges("bytes=-20", 10) == [(0, 9)]
    assert byte_ranges("bytes=0-" + "9" * 5000, 10) == [(0, 9)]
    assert byte_ranges("bytes=0-1,٣-4", 10) is None, "only ASCII digits"
    assert byte_ranges("bytes=" + ",".join(["0-1"] * 101), 10) is None, "too many ranges: the whole file"
    with pytest.raises(RangeRefused, match="the file is empty"):
        byte_ranges("bytes=0-", 0)
    with pytest.raises(RangeRefused, match="within 0-9"):
        byte_ranges("bytes=" + "9" * 5000 + "-", 10)


# -- methods --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "url", "allow", "use"), [
    ("DELETE", "/healthz", "GET, HEAD", "GET or HEAD"),
    ("DELETE", "/api/v1/users", "GET, HEAD, POST", "GET, HEAD or POST"),
    ("PUT", "/api/v1/units/000.00.01.H99", "GET, HEAD, PATCH", "GET, HEAD or PATCH"),
    ("GET", STATUS_CHANGE, "POST", "POST"),
    ("DELETE", "/api/v1/documents", "POST", "POST"),
])
async def test_a_method_not_allowed_names_the_allowed_ones(client, world, method, url, allow, use) -> None:
    r = await client.request(method, url, headers=world.auth("admin"))
    body = _assert_problem(r, 405)
    assert r.headers["allow"] == allow
    assert body["detail"] == f"{method} is not allowed here; use {use}"


async def test_head_answers_wherever_get_does_with_the_same_headers_and_no_body(client, world) -> None:
    doc = await _uploaded(client, world)
    auth = world.auth("xa1")
    for url in ("/healthz", f"/api/v1/documents/{doc['id']}/content", f"/api/v1/documents/{doc['id']}"):
        got, head = await client.get(url, headers=auth), await client.head(url, headers=auth)
        assert head.status_code == got.status_code == 200, url
        assert head.content == b""
        for name in ("content-type", "content-length", "etag", "content-disposition"):
            assert head.headers.get(name) == got.headers.get(name), (url, name)
    part = await client.head(f"/api/v1/documents/{doc['id']}/content", headers={**auth, "Range": "bytes=0-9"})
    assert (part.status_code, part.headers["content-length"], part.content) == (206, "10", b"")


def _requests_counted(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("docexchange_http_requests_total", labels) or 0.0


async def test_head_is_refused_where_get_is_and_counted_as_head(client, world) -> None:
    refused = await client.head("/api/v1/documents/nope/content")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == PROBLEM
    assert refused.content == b""
    not_here = await client.head(STATUS_CHANGE, headers=world.auth("xa1"))
    assert not_here.status_code == 405
    assert not_here.headers["allow"] == "POST"
    counted = _requests_counted("HEAD", "/healthz", "200")
    await client.head("/healthz")
    assert _requests_counted("HEAD", "/healthz", "200") == counted + 1


async def test_the_server_still_sees_a_head_request_as_head(app) -> None:
    # Servers such as uvicorn read the method of their own scope to leave the body out.
    seen = []

    async def server(scope, receive, send):
        seen.append(scope)
        await app(scope, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://docexchange.test") as c:
        assert (await c.head("/healthz")).status_code == 200
    assert seen[0]["method"] == "HEAD"


# -- JSON bodies ----------------------------------------------------------------------------------
BODY_MISTAKES = {
    "JSON sent as text/plain": (b'{"status": "03"}', "text/plain",
                                "the body was sent as 'text/plain', so it was not read as JSON; "
                                "send a JSON object with 'Content-Type: application/json'"),
    "JSON sent without a content type": (b'{"status": "03"}', None,
                                         "the body was sent without a Content-Type header, so it was not read "
                                         "as JSON; send a JSON object with 'Content-Type: application/json'"),
    "no body": (b"", "application/json",
                "the request has no body; send a JSON object with 'Content-Type: application/json'"),
    "cut short": (b"{", "application/json",
                  "the body is not valid JSON (Expecting property name enclosed in double quotes at line 1, "
                  "column 2); correct it and send it again"),
    "broken on line 3": (b'{\n "status": "03",\n x}', "application/json", "at line 3, column 2"),
    "a list, not an object": (b"[1]", "application/json", "the body must be a JSON object ({...}), not a list"),
    "nested too deeply": (b"[" * 100_000, "application/json", "the body is nested too deeply to be read as JSON"),
    "not UTF-8": (b'{"status": "\xff"}', "application/json", "the body is not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(BODY_MISTAKES))
async def test_a_json_body_that_cannot_be_read_is_a_problem_saying_what_to_send(client, world, case) -> None:
    content, content_type, words = BODY_MISTAKES[case]
    headers = {**world.auth("xa1"), **({"Content-Type": content_type} if content_type else {})}
    r = await client.post(STATUS_CHANGE, headers=headers, content=content)
    body = _assert_problem(r, 422)
    assert body["type"].endswith("/validation-failed")
    assert words in body["detail"]
    assert not body["detail"].startswith(":")
    assert [e["field"] for e in body["errors"]] == [""]


async def test_an_error_in_one_field_still_names_the_field(client, world) -> None:
    r = await client.post(STATUS_CHANGE, headers=world.auth("xa1"), json={"status": 5})
    body = _assert_problem(r, 422)
    assert body["detail"].startswith("status: ")
    assert body["errors"][0]["field"] == "status"


# -- X-Request-ID ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sent", ["qlvb-2026.11_22a", "3f2b9c1e-8d4a-4b7e-9f00-123456789abc"])
async def test_a_plain_ascii_request_id_is_kept(client, sent) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": sent})
    assert r.headers["x-request-id"] == sent


@pytest.mark.parametrize("sent", ["dépôt2026".encode("latin-1"), "văn-bản-2026".encode(), b"short", b"x" * 65,
                                  b"has space in it", b"semi;colon;here"])
async def test_any_other_request_id_is_replaced_by_a_new_one(client, sent) -> None:
    r = await client.get("/api/v1/me", headers=[(b"X-Request-ID", sent)])
    made = r.headers["x-request-id"]
    assert made.encode() != sent
    assert re.fullmatch("[0-9a-f]{16}", made)
    assert _assert_problem(r, 401)["request_id"] == made
