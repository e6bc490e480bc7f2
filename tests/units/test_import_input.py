"""A unit file the import cannot use is refused with a problem naming what is wrong,
never a server error, and nothing of it is imported."""

from __future__ import annotations

import json

import pytest

from service.units import parse_tree
from tests.units.conftest import XA1

IMPORT = "/api/v1/units/import"


def _unit(**fields) -> dict:
    return {"code": "000.09.01.H99", "name": "Chi bộ mới", "level": "Chi bộ", "parent_code": XA1, **fields}


def _nested(depth: int) -> dict:
    """A chain of ``depth`` units, each the only child of the one before, under XA1."""
    node: dict = {"code": f"9.{depth}", "name": "Chi bộ", "level": "Chi bộ"}
    for level in range(depth - 1, 0, -1):
        node = {"code": f"9.{level}", "name": "Chi bộ", "level": "Chi bộ", "children": [node]}
    return {**node, "parent_code": XA1}


def _chain(length: int) -> list[dict]:
    """The same chain as a flat list, each unit naming the one before as parent."""
    return [{"code": f"9.{n}", "name": "Chi bộ", "level": "Chi bộ", "parent_code": f"9.{n - 1}" if n > 1 else XA1}
            for n in range(1, length + 1)]


def _csv(*rows: str) -> bytes:
    return ("code,name,level,parent_code,mailboxes,has_seal\n" + "".join(r + "\n" for r in rows)).encode()


JSON_CASES = {
    "children not a list": ([_unit(children=5)], "unit 1 (000.09.01.H99): 'children' must be a list of units"),
    "mailboxes not a list": ([_unit(), _unit(code="000.09.02.H99", mailboxes=5)],
                             "unit 2 (000.09.02.H99): 'mailboxes' must be a list of addresses"),
    "mailbox not an address": ([_unit(mailboxes=["văn phòng"])], "'văn phòng' is not an e-mail address"),
    "has_seal as a word": ([_unit(has_seal="no")], "unit 1 (000.09.01.H99): 'has_seal' must be true or false"),
    "has_seal as a number": ([_unit(has_seal=0)], "'has_seal' must be true or false"),
    "name not text": ([_unit(name=["Chi bộ"])], "'name' must be text"),
    "name too long": ([_unit(name="x" * 301)], "'name' is 301 characters long; at most 300"),
    "unit not an object": ([_unit(children=["000.09.02.H99"])], "unit 2 is not an object"),
    "nested too deep to read": (None, "nested too deeply"),
    "nested deeper than a tree": ([_nested(25)], "unit 21 (9.21) is nested 21 levels deep; a unit tree has at most 20"),
    "a chain deeper than a tree": (_chain(5000), "would be level 21 of the tree; a unit tree has at most 20 levels"),
}


def _assert_refused(r, words: str) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert words in r.json()["detail"]


@pytest.mark.parametrize("case", list(JSON_CASES))
async def test_bad_json_is_a_problem_naming_the_unit(client, commune_admin, snapshot, case) -> None:
    rows, words = JSON_CASES[case]
    # 20,000 levels of nesting: more than Python's JSON decoder will recurse.
    body = json.dumps(rows).encode() if rows is not None else b'{"children":[' * 20_000 + b"]}" * 20_000
    before = await snapshot()
    r = await client.post(IMPORT, headers={**commune_admin, "content-type": "application/json"}, content=body)
    _assert_refused(r, words)
    assert await snapshot() == before


async def test_a_number_of_thousands_of_digits_is_refused(client, commune_admin, snapshot) -> None:
    before = await snapshot()
    body = b'[{"code": "000.09.01.H99", "name": "A", "level": "B", "parent_code": "' + XA1.encode() + b'", "x": '
    r = await client.post(IMPORT, headers={**commune_admin, "content-type": "application/json"},
                          content=body + b"7" * 5000 + b"}]")
    _assert_refused(r, "a number of 5000 digits")
    assert await snapshot() == before


CSV_CASES = {
    "field over the csv limit": (_csv(f"000.09.01.H99,Chi bộ A,Chi bộ,{XA1},,", f"000.09.02.H99,{'x' * 140_000},,,,"),
                                 "line 3: the CSV cannot be read"),
    "has_seal not yes or no": (_csv(f"000.09.01.H99,Chi bộ A,Chi bộ,{XA1},,có",
                                    f"000.09.02.H99,Chi bộ B,Chi bộ,{XA1},,x"),
                               "line 3: has_seal 'x' is neither yes nor no"),
    "name too long": (_csv(f"000.09.01.H99,{'x' * 400},Chi bộ,{XA1},,"), "line 2: 'name' is 400 characters long"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
async def test_bad_csv_is_a_problem_naming_the_line(client, commune_admin, snapshot, case) -> None:
    body, words = CSV_CASES[case]
    before = await snapshot()
    r = await client.post(IMPORT, headers={**commune_admin, "content-type": "text/csv"}, content=body)
    _assert_refused(r, words)
    assert await snapshot() == before


async def test_csv_seals_read_yes_and_no_in_either_language(client, commune_admin, snapshot) -> None:
    words = {"000.09.01.H99": ("Có", True), "000.09.02.H99": ("KHÔNG", False), "000.09.03.H99": ("yes", True),
             "000.09.04.H99": ("0", False), "000.09.05.H99": ("", False)}
    body = _csv(*(f"{code},Chi bộ {code},Chi bộ,{XA1},,{word}" for code, (word, _) in words.items()))
    r = await client.post(IMPORT, headers={**commune_admin, "content-type": "text/csv"}, content=body)
    assert r.status_code == 200, r.text
    seals = {u["code"]: u["has_seal"] for u in await snapshot()}
    assert {code: seals[code] for code in words} == {code: seal for code, (_, seal) in words.items()}


async def test_json_seals_read_true_and_false(client, commune_admin, snapshot) -> None:
    rows = [_unit(has_seal=True), _unit(code="000.09.02.H99", has_seal=False), _unit(code="000.09.03.H99")]
    r = await client.post(IMPORT, headers=commune_admin, json=rows)
    assert r.status_code == 200, r.text
    seals = {u["code"]: u["has_seal"] for u in await snapshot()}
    assert [seals[u["code"]] for u in rows] == [True, False, False]


async def test_an_absurdly_large_file_is_refused_before_it_is_read(client, commune_admin, snapshot) -> None:
    before = await snapshot()
    body = json.dumps([_unit(name="x" * 200)]).encode() + b" " * (17 * 1024 * 1024)
    r = await client.post(IMPORT, headers={**commune_admin, "content-type": "application/json"}, content=body)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "larger than 16 MB" in r.json()["detail"]
    assert await snapshot() == before


@pytest.mark.parametrize("code", ["1ß", "ﬀ.1", "ı.1", "ſ.1", "000.00.09.Hà"])
async def test_a_code_with_letters_outside_ascii_is_refused_not_rewritten(client, world, commune_admin, snapshot,
                                                                          code) -> None:
    before = await snapshot()
    r = await client.post(IMPORT, headers=commune_admin, json=[_unit(code=code)])
    _assert_refused(r, "outside A–Z, 0–9 and the dot")
    r = await client.post(IMPORT, headers=commune_admin, json=[_unit(parent_code=code)])
    _assert_refused(r, "parent_code")
    r = await client.patch("/api/v1/units/000.01.01.H99", headers=commune_admin, json={"code": code})
    _assert_refused(r, "is not an identifier code")
    assert await snapshot() == before
    # Looked up, such a code finds no unit (ß is not read as SS).
    ss = await client.patch("/api/v1/units/000.01.01.H99", headers=commune_admin, json={"code": "1SS"})
    assert ss.status_code == 200, ss.text
    assert (await client.get("/api/v1/units/1ß", headers=commune_admin)).status_code == 404


async def test_an_import_keeps_each_mailbox_once_and_at_most_twenty(client, commune_admin, snapshot) -> None:
    r = await client.post(IMPORT, headers=commune_admin,
                          json=[_unit(mailboxes=["vanthu@x.vn", "VanThu@X.VN", "vanthu@x.vn", "bithu@x.vn"])])
    assert r.status_code == 200, r.text
    unit = (await client.get("/api/v1/units/000.09.01.H99", headers=commune_admin)).json()
    assert unit["mailboxes"] == ["vanthu@x.vn", "bithu@x.vn"]
    before = await snapshot()
    many = [f"hop{n}@x.vn" for n in range(21)]
    _assert_refused(await client.post(IMPORT, headers=commune_admin, json=[_unit(mailboxes=many)]),
                    "has 21 mailboxes; a unit has at most 20")
    _assert_refused(await client.post(IMPORT, headers={**commune_admin, "content-type": "text/csv"},
                                      content=_csv(f"000.09.01.H99,Chi bộ mới,Chi bộ,{XA1},{';'.join(many)},")),
                    "line 2 has 21 mailboxes")
    assert await snapshot() == before


def _form(name: str, content: bytes) -> dict:
    return {"files": {"file": (name, content, "application/octet-stream")}}


CSV_TEXT = f"code,name,level,parent_code\n000.09.01.H99,Chi bộ mới,Chi bộ,{XA1}\n"
SENT_AS = {
    "curl --data-binary (form-urlencoded)": {"content": CSV_TEXT.encode(),
                                             "headers": {"content-type": "application/x-www-form-urlencoded"}},
    "text/plain": {"content": CSV_TEXT.encode(), "headers": {"content-type": "text/plain"}},
    "no type": {"content": CSV_TEXT.encode()},
    "curl -F file=@tree.csv": _form("tree.csv", CSV_TEXT.encode()),
    "JSON as text/plain": {"content": json.dumps([_unit()]).encode(), "headers": {"content-type": "text/plain"}},
    "JSON in a form": _form("tree.json", json.dumps({"units": [_unit()]}).encode()),
    "separated by semicolons (Excel, Vietnamese settings)": {
        "content": CSV_TEXT.replace(",", ";").encode(), "headers": {"content-type": "text/csv"}},
    "separated by tabs, UTF-16 (Excel's Unicode text)": {
        "content": CSV_TEXT.replace(",", "\t").encode("utf-16"), "headers": {"content-type": "text/plain"}},
    "capitalised column names": {"content": CSV_TEXT.replace("code,name", "Code, Name").encode(),
                                 "headers": {"content-type": "text/csv"}},
}


@pytest.mark.parametrize("how", list(SENT_AS))
async def test_a_unit_file_is_read_however_it_is_sent(client, commune_admin, how) -> None:
    headers = {**commune_admin, **SENT_AS[how].get("headers", {})}
    r = await client.post(IMPORT, **{**SENT_AS[how], "headers": headers})
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 1, "updated": 0}
    unit = (await client.get("/api/v1/units/000.09.01.H99", headers=commune_admin)).json()
    assert (unit["name"], unit["level"]) == ("Chi bộ mới", "Chi bộ")


UNREADABLE = {
    "columns separated by a pipe": ({"content": b"code|name|level\nX|Y|Z\n"},
                                    "(separated by commas, semicolons or tabs); the file's first line is "
                                    "'code|name|level'"),
    "Windows-1252 text": ({"content": CSV_TEXT.encode("utf-8").replace("bộ".encode(), b"b\xf4")},
                          "is not UTF-8 text (byte 48 is not); save it as CSV UTF-8"),
    "CSV sent as JSON": ({"content": CSV_TEXT.encode(), "headers": {"content-type": "application/json"}},
                         "if this is a CSV file, send it as text/csv"),
    "a form with no file": ({"data": {"file": "x"}, "files": {"other": ("", b"")}}, "the form holds"),
    "a form with two files": ({"files": [("file", ("a.csv", CSV_TEXT.encode())), ("file", ("b.csv", b"x"))]},
                              "the form holds 2 files; send one unit file"),
    "a form cut short": ({"content": b"--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n"
                                     b"\r\ncode,name", "headers": {"content-type": "multipart/form-data; boundary=zz"}},
                         "the form holds no file"),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
async def test_a_file_that_cannot_be_read_says_what_to_do(client, commune_admin, snapshot, case) -> None:
    sent, words = UNREADABLE[case]
    before = await snapshot()
    r = await client.post(IMPORT, **{**sent, "headers": {**commune_admin, **sent.get("headers", {})}})
    _assert_refused(r, words)
    assert await snapshot() == before


def test_a_csv_file_not_named_csv_is_read_as_csv() -> None:
    """What `docexchange units import tree.txt` reads: the content says it is CSV."""
    specs = parse_tree(CSV_TEXT.replace(",", ";").encode(), "tree.txt")
    assert [(s.code, s.name, s.parent_code) for s in specs] == [("000.09.01.H99", "Chi bộ mới", XA1)]
