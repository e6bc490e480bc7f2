"""Searching with diacritics: one word, whichever vowel carries its tone mark (hòa, hoà; and
the slips qúa, gìa), whatever stands in for Đ or is typed in fullwidth letters, and whatever
invisible characters were pasted along."""

from __future__ import annotations

import asyncio
import unicodedata

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from service.storage.migrate import alembic_config
from service.text import fold, search_key, search_keys
from service.units import name_key
from tests.factories.pdf import make_pdf, metadata, upload_form

# Old style (mark on the first vowel of oa, oe, uy) and new style (on the second): one word.
SAME_WORD = [
    ("Hòa Bình", "Hoà Bình"), ("hóa đơn", "hoá đơn"), ("tỏa sáng", "toả sáng"), ("xõa tóc", "xoã tóc"),
    ("họa sĩ", "hoạ sĩ"), ("khỏe", "khoẻ"), ("xòe", "xoè"), ("lòe loẹt", "loè loẹt"), ("thúy", "thuý"),
    ("tùy", "tuỳ"), ("thủy", "thuỷ"), ("Ủy ban", "Uỷ ban"), ("lũy tre", "luỹ tre"), ("trụy", "truỵ"),
    ("qúy", "quý"),  # the u of qu is part of the consonant: the mark is the y's
    ("Ðại hội", "Đại hội"),  # U+00D0 from legacy encodings for U+0110
    ("Đại h\u00adội", "Đại hội"), ("\ufeffKế\u200b hoạch", "Kế hoạch"), ("Kế\u2060hoạch", "Kếhoạch"),
    (unicodedata.normalize("NFD", "HÒA BÌNH"), "hoà bình"),
    # qu and gi are consonants: their u and i never carry the tone mark of the vowel after them.
    ("qúa hạn", "quá hạn"), ("qủa", "quả"), ("gìa", "già"), ("gíup đỡ", "giúp đỡ"), ("qúôc", "quốc"),
    ("gìơ", "giờ"), ("Gịêng", "giệng"),
    # Compatibility forms read as the letters they show: fullwidth (an East Asian keyboard
    # layout), Roman numerals, ligatures from copied PDF text.
    ("\uff2b\u1ebf \uff48o\u1ea1ch", "kế hoạch"), ("Quý \u2163", "quý iv"), ("\ufb01le", "file"),
]

# Written the same in both styles, or other words altogether: left as they are.
KEPT = ["hoàng", "hoặc", "hoạch", "ngoài", "xoáy", "khoèo", "huỳnh", "khuỷu", "thuyền", "quyết", "Quỳnh",
        "thuở", "thuế", "của", "quà", "hoa", "giữ gìn", "gì", "nghĩa", "kìa", "giếng", "quốc", "giúp"]


@pytest.mark.parametrize(("one", "other"), SAME_WORD)
def test_either_spelling_gives_one_search_key(one: str, other: str) -> None:
    assert search_key(one) == search_key(other)
    assert fold(one) == fold(other)


@pytest.mark.parametrize("word", KEPT)
def test_words_written_alike_in_both_styles_keep_their_letters(word: str) -> None:
    assert search_key(word) == unicodedata.normalize("NFC", word.casefold())


@pytest.mark.parametrize(("misplaced", "right"), [("hòang", "hoàng"), ("khủyu", "khuỷu"), ("qùynh", "quỳnh")])
def test_a_mark_misplaced_before_a_final_consonant_is_read_where_it_belongs(misplaced: str, right: str) -> None:
    assert search_key(misplaced) == search_key(right) == right


@pytest.mark.parametrize(("one", "other"), [("thủy", "thúy"), ("hòa", "hoa"), ("hòa", "hỏa"), ("quý", "quỳ"),
                                            ("của", "cúa")])
def test_different_words_stay_different(one: str, other: str) -> None:
    assert search_key(one) != search_key(other)


def test_a_search_key_made_again_is_the_same() -> None:
    for one, other in SAME_WORD:
        assert search_key(search_key(one)) == search_key(other)


@pytest.mark.parametrize(("typed", "keys"), [("hò", ["hò", "hoà", "hoè"]), ("Thú", ["thú", "thuý"]),
                                             ("hòa", ["hoà"]), ("hoàng", ["hoàng"])])
def test_a_query_ending_on_the_first_vowel_also_looks_for_the_mark_moved_on(typed: str, keys: list[str]) -> None:
    assert search_keys(typed) == keys


async def _upload(client, world, number: str, subject: str) -> str:
    up = await client.post("/api/v1/documents", headers=world.auth("tu"),
                           **upload_form(metadata(number, subject=subject), pdf=make_pdf(number)))
    assert up.status_code == 201, up.text
    return str(up.json()["id"])


async def _found(client, world, q: str) -> list[str]:
    """The ids of the outbox's documents that ``q`` finds, every page of them."""
    ids: list[str] = []
    params = {"q": q, "limit": 500}
    while True:
        r = await client.get("/api/v1/outbox", headers=world.auth("tu"), params=params)
        assert r.status_code == 200, r.text
        ids += [d["id"] for d in r.json()["items"]]
        if not r.json()["next_cursor"]:
            return ids
        params["cursor"] = r.json()["next_cursor"]


@pytest.mark.parametrize(("stored", "typed"), [
    ("Hoà Bình", "hòa bình"), ("Hòa Bình", "hoà bình"), ("Thuý", "thúy"), ("Thúy", "thuý"),
    ("Ủy ban nhân dân", "uỷ ban"), ("Uỷ ban nhân dân", "ủy ban"), ("Quý IV", "qúy iv"), ("sức khỏe", "khoẻ"),
    ("Đại hội", "\u00d0ại hội"), ("\u00d0ại hội", "đại hội"), ("\u00d0ại hội", "dai hoi"),
    ("Đại hội", "đại \u200bhội"), ("Đại\u200b hội", "đại hội"), ("Đại h\u00adội", "dai hoi"),
    ("Hòa Bình", "hò"),  # the start of a word, typed before its second vowel
    ("quá hạn", "qúa hạn"), ("qúa hạn", "quá hạn"), ("Gìa hóa", "già hoá"),
    ("\uff28\u00e0 \uff2e\u1ed9i", "hà nội"), ("\uff28\u00e0 \uff2e\u1ed9i", "ha noi"),
    ("Hà Nội", "\uff48\u00e0 n\u1ed9i"),
    ("Quý \u2163", "quý iv"), ("Quý IV", "qúy \u2163"),
])
async def test_a_search_finds_the_word_whichever_way_it_is_written(client, world, stored, typed) -> None:
    doc_id = await _upload(client, world, "73-KH/TU", f"Kế hoạch {stored}")
    await _upload(client, world, "74-KH/TU", "Kế hoạch Hồng Mai thủy lợi")
    assert await _found(client, world, typed) == [doc_id]


async def test_a_search_does_not_take_one_tone_for_another(client, world) -> None:
    await _upload(client, world, "75-KH/TU", "Kế hoạch thủy lợi")
    assert await _found(client, world, "thúy") == []
    assert await _found(client, world, "hòa") == []


def _old_search_key(text_: str) -> str:
    """search_key as it was before one tone placement: what older documents were stored with."""
    return " ".join(unicodedata.normalize("NFC", text_.casefold()).split())


def _old_fold(text_: str) -> str:
    decomposed = unicodedata.normalize("NFD", text_.casefold())
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).replace("đ", "d").split())


FULLWIDTH_NAME = "\uff34\u1ec9nh \u1ee7y H\u00e0 S\u01a1n"  # Ｔỉnh ủy Hà Sơn

OLD_SUBJECTS = ["Kế hoạch Hòa Bình", "Kế hoạch Hoà Bình", "Ủy ban \u00d0ại hội", "Báo cáo\u200b quý",
                "\uff2b\u1ebf hoạch qúa hạn"]


async def test_documents_stored_before_the_fix_are_found_after_the_migration(client, world, db_url) -> None:
    # 0009 and 0010 make the keys of every document again, a thousand rows at a time: 2,500
    # copies of a registered document, keyed as the code before them keyed them, cross two
    # batches. 0010 makes every unit's folded name again too.
    model = await _upload(client, world, "1-KH/TU", "Kế hoạch mẫu")
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            row = dict((await conn.execute(text("SELECT * FROM document WHERE id = :id"), {"id": model}))
                       .mappings().one())
            copies = []
            for i in range(2500):
                subject = OLD_SUBJECTS[i % len(OLD_SUBJECTS)]
                searchable = f"{i + 2}-KH/TU {subject} {row['doc_type']}"
                copies.append(row | {"id": f"old{i:05d}", "dedup_key": f"old:{i}", "number_notation": f"{i + 2}-KH/TU",
                                     "subject": subject, "search_text": _old_search_key(searchable),
                                     "search_folded": _old_fold(searchable)})
            columns = ", ".join(row)
            await conn.execute(text(f"INSERT INTO document ({columns}) VALUES ({', '.join(':' + c for c in row)})"),
                               copies)
            await conn.execute(text("UPDATE unit SET name = :name, name_folded = :folded WHERE code = '000.01.01.H99'"),
                               {"name": FULLWIDTH_NAME, "folded": _old_fold(FULLWIDTH_NAME)})
        cfg = alembic_config(db_url)
        await asyncio.to_thread(command.downgrade, cfg, "0008")
        await asyncio.to_thread(command.upgrade, cfg, "head")
        async with engine.connect() as conn:
            stored = (await conn.execute(text("SELECT number_notation, subject, doc_type, search_text, search_folded "
                                              "FROM document"))).all()
            units = (await conn.execute(text("SELECT name, name_folded FROM unit"))).all()
    finally:
        await engine.dispose()
    assert len(stored) == 2501
    for number, subject, doc_type, key, folded in stored:
        assert (key, folded) == (search_key(f"{number} {subject} {doc_type}"), fold(f"{number} {subject} {doc_type}"))
    assert len(await _found(client, world, "hoà bình")) == 1000
    assert len(await _found(client, world, "hòa bình")) == 1000
    assert len(await _found(client, world, "uỷ ban đại hội")) == 500
    assert len(await _found(client, world, "bao cao quy")) == 500
    assert len(await _found(client, world, "kế hoạch quá hạn")) == 500
    assert all(folded == name_key(name) for name, folded in units)
    assert name_key(FULLWIDTH_NAME) == name_key("Tỉnh ủy Hà Sơn") != _old_fold(FULLWIDTH_NAME)
