"""Dates a clerk types into a listing's filters: YYYY-MM-DD, and a refusal in words for any other form."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import TypeAdapter, ValidationError

from service.text import IsoDate

_DAY = TypeAdapter(IsoDate)


def _refusal(given: object) -> str:
    with pytest.raises(ValidationError) as caught:
        _DAY.validate_python(given)
    return str(caught.value.errors()[0]["msg"])


def test_a_date_written_yyyy_mm_dd_is_that_day() -> None:
    assert _DAY.validate_python("2026-01-31") == date(2026, 1, 31)
    assert _DAY.validate_python(" 2026-01-31 ") == date(2026, 1, 31)
    assert _DAY.validate_python(date(2026, 1, 31)) == date(2026, 1, 31)


@pytest.mark.parametrize(("given", "meant"), [("20260101", "2026-01-01"), ("31/01/2026", "2026-01-31"),
                                              ("1.2.2026", "2026-02-01")])
def test_a_date_in_another_form_is_refused_with_the_form_it_meant(given: str, meant: str) -> None:
    message = _refusal(given)
    assert "write the date as YYYY-MM-DD" in message
    assert f"did you mean {meant}?" in message


@pytest.mark.parametrize("given", ["1763856000", "2026-01-31T10:00:00", "2026-01-31T00:00:00", "tomorrow",
                                   "10000-01-01", "2026-1-31", "99999999", 1763856000, 1.5])
def test_seconds_times_and_words_are_refused_not_read_as_a_day(given: object) -> None:
    message = _refusal(given)
    assert "write the date as YYYY-MM-DD" in message
    assert "did you mean" not in message


def test_a_day_that_is_not_in_the_calendar_is_named() -> None:
    assert _refusal("2026-02-30") == ("2026-02-30 is not a day of the calendar (check the month and the day); "
                                      "write the date as YYYY-MM-DD, e.g. 2026-01-31")


@pytest.mark.parametrize("given", ["", "  ", None])
def test_an_empty_date_asks_for_one(given: object) -> None:
    assert _refusal(given) == "the date is empty; write it as YYYY-MM-DD, e.g. 2026-01-31"


def test_a_refusal_does_not_repeat_a_long_or_unprintable_input() -> None:
    message = _refusal("2026\x00" + "9" * 1000)
    assert "\x00" not in message
    assert len(message) < 120


@pytest.mark.parametrize("path", ["/api/v1/inbox", "/api/v1/outbox"])
@pytest.mark.parametrize(("params", "field"), [({"since": "20260101"}, "since"), ({"until": "1763856000"}, "until")])
async def test_a_listing_refuses_a_date_not_written_yyyy_mm_dd(client, world, path, params, field) -> None:
    r = await client.get(path, headers=world.auth("xa1"), params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"].startswith(f"{field}: write the date as YYYY-MM-DD")
