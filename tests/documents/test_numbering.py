from __future__ import annotations

import pytest

from service.documents import parse_number_notation
from service.errors import InvalidInputError


@pytest.mark.parametrize(("raw", "form", "number", "doc_type", "issuer"), [
    ("35-KH/HU", "party", "35", "KH", "HU"),
    ("08-NQ/TU", "party", "08", "NQ", "TU"),
    ("84-CV/ĐU", "party", "84", "CV", "ĐU"),
    ("15-HD/BTGTU", "party", "15", "HD", "BTGTU"),
    ("15/QĐ-BNV", "state", "15", "QĐ", "BNV"),
    ("05/BNV-VP", "state", "05", "CV", "BNV-VP"),
    (" 52 - NQ / TW ", "party", "52", "NQ", "TW"),
])
def test_party_and_state_forms(raw, form, number, doc_type, issuer) -> None:
    parsed = parse_number_notation(raw)
    assert (parsed.form, parsed.number, parsed.doc_type, parsed.issuer) == (form, number, doc_type, issuer)


def test_leading_zero_is_the_same_number() -> None:
    assert parse_number_notation("5-KH/HU").key == parse_number_notation("05-KH/HU").key
    assert parse_number_notation("5-KH/HU").key != parse_number_notation("5-KH/TU").key


@pytest.mark.parametrize("raw", ["", "KH/HU", "35-KH", "số 35", "35--KH/HU"])
def test_garbage_is_refused_with_both_forms_shown(raw) -> None:
    with pytest.raises(InvalidInputError, match="35-KH/HU"):
        parse_number_notation(raw)
