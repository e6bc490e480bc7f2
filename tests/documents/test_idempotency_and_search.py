"""Retries with an Idempotency-Key, and Vietnamese-aware search with cursors."""

from __future__ import annotations

import unicodedata

from tests.factories.pdf import make_pdf, metadata, upload_form


async def test_retried_upload_and_send_return_the_first_answer(client, world) -> None:
    headers = {**world.auth("xa1"), "Idempotency-Key": "qlvb-2026-000123"}
    first = await client.post("/api/v1/documents", headers=headers, **upload_form(metadata()))
    retry = await client.post("/api/v1/documents", headers=headers, **upload_form(metadata()))
    assert first.status_code == retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    doc_id = first.json()["id"]
    send_headers = {**world.auth("xa1"), "Idempotency-Key": "send-000123"}
    body = {"recipients": [{"under": "000.00.01.H99"}]}
    a = await client.post(f"/api/v1/documents/{doc_id}/send", headers=send_headers, json=body)
    b = await client.post(f"/api/v1/documents/{doc_id}/send", headers=send_headers, json=body)
    assert a.json() == b.json() == {"document_id": doc_id, "created": 3, "already_sent": 0}
    listed = (await client.get(f"/api/v1/documents/{doc_id}/deliveries", headers=world.auth("xa1"))).json()
    assert listed["status_counts"] == {"01": 3}
    # The same key for a different request is refused, not silently replayed.
    other = await client.post("/api/v1/documents", headers=headers,
                              **upload_form(metadata("36-KH/ĐU"), pdf=make_pdf("khac")))
    assert other.status_code == 409
    assert "different request" in other.json()["detail"]
    # So is the same file under another name: the first answer would show the old name.
    renamed = await client.post("/api/v1/documents", headers=headers,
                                **upload_form(metadata(), filename="ke-hoach-ban-sua.pdf"))
    assert renamed.status_code == 409
    assert "different request" in renamed.json()["detail"]


async def test_search_ignores_normalisation_and_optional_diacritics(client, world) -> None:
    for number, subject in (("1-KH/ĐU", "Kế hoạch tuyên truyền"), ("2-BC/ĐU", "Báo cáo kết quả"),
                            ("3-KH/ĐU", "Kê hoạch sai chính tả")):
        form = upload_form(metadata(number, subject=subject, doc_type="Văn bản"), pdf=make_pdf(number))
        r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **form)
        assert r.status_code == 201, r.text

    async def numbers(q: str) -> list[str]:
        r = await client.get("/api/v1/outbox", headers=world.auth("xa1"), params={"q": q})
        return sorted(d["number_notation"] for d in r.json()["items"])

    assert await numbers("ke hoach") == ["1-KH/ĐU", "3-KH/ĐU"]
    assert await numbers("Kế hoạch") == ["1-KH/ĐU"]
    assert await numbers(unicodedata.normalize("NFD", "kế HOẠCH")) == ["1-KH/ĐU"]
    assert await numbers("BC/DU") == ["2-BC/ĐU"]
    assert await numbers("100%") == []


async def test_cursor_pagination_walks_every_item_once(client, world) -> None:
    for i in range(7):
        up = await client.post("/api/v1/documents", headers=world.auth("tu"),
                               **upload_form(metadata(f"{i + 1}-CV/TU"), pdf=make_pdf(str(i))))
        await client.post(f"/api/v1/documents/{up.json()['id']}/send", headers=world.auth("tu"),
                          json={"recipients": ["000.00.01.H99"]})
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/inbox", headers=world.auth("xa1"), params=params)).json()
        seen += [d["document"]["number_notation"] for d in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(f"{i + 1}-CV/TU" for i in range(7))
    assert len(seen) == 7
