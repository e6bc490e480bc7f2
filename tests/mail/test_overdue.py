"""Deliveries not registered by 17:00 (Mon–Fri, Vietnam time) remind the unit, then its parent, once."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from service.mail import MailConfig, sweep_overdue
from service.outbox.models import OutboxEvent
from service.storage.db import Database

from .conftest import add_delivery, add_document, add_unit

pytestmark = pytest.mark.asyncio
VN = ZoneInfo("Asia/Ho_Chi_Minh")


def vn(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=VN)


async def test_reminder_at_end_of_day_then_parent_next_working_day_each_once(db: Database, tmp_path: Path) -> None:
    province = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    commune = await add_unit(db, "Đảng ủy xã", ["xa@so.vn"], parent=province)
    branch = await add_unit(db, "Chi bộ thôn 1", ["cb@so.vn"], parent=commune)
    doc = await add_document(db, province)
    late = await add_delivery(db, doc, branch, vn(20, 10))  # Friday 10:00
    config = MailConfig(host="", workday_end_hour=17)

    assert await sweep_overdue(db, config, vn(20, 16, 59)) == 0
    assert await sweep_overdue(db, config, vn(20, 17, 1)) == 1
    assert await sweep_overdue(db, config, vn(21, 9)) == 0  # Saturday: nothing new
    assert await sweep_overdue(db, config, vn(23, 16)) == 0  # Monday before 17:00
    assert await sweep_overdue(db, config, vn(23, 17, 1)) == 1
    assert await sweep_overdue(db, config, vn(24, 17, 1)) == 0

    async with db.session() as s:
        events = list((await s.execute(select(OutboxEvent).order_by(OutboxEvent.created_at))).scalars())  # type: ignore[arg-type]
    assert [(e.kind, e.unit_id, e.delivery_id) for e in events] == [
        ("overdue_reminder", branch.id, late.id), ("overdue_parent", commune.id, late.id)]
    assert events[1].payload["overdue_unit_name"] == "Chi bộ thôn 1"


async def test_arrival_after_17h_is_due_the_next_working_day(db: Database) -> None:
    province = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    branch = await add_unit(db, "Chi bộ", ["cb@so.vn"], parent=province)
    doc = await add_document(db, province)
    await add_delivery(db, doc, branch, vn(20, 18))  # Friday 18:00
    config = MailConfig(host="")
    assert await sweep_overdue(db, config, vn(22, 20)) == 0  # Sunday
    assert await sweep_overdue(db, config, vn(23, 17, 1)) == 1  # Monday 17:01


async def test_public_holidays_are_not_working_days(db: Database) -> None:
    # Tết 2027 (from DOCEX_MAIL_HOLIDAYS) and 2 September (fixed): no reminder falls due on them.
    province = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    branch = await add_unit(db, "Chi bộ", ["cb@so.vn"], parent=province)
    doc = await add_document(db, province)
    config = MailConfig(host="", holidays=frozenset({date(2027, 2, 8), date(2027, 2, 9)}))
    await add_delivery(db, doc, branch, datetime(2027, 2, 5, 18, tzinfo=VN))  # Friday evening before Tết
    assert await sweep_overdue(db, config, datetime(2027, 2, 9, 17, 1, tzinfo=VN)) == 0  # Tuesday, Tết
    assert await sweep_overdue(db, config, datetime(2027, 2, 10, 16, tzinfo=VN)) == 0
    assert await sweep_overdue(db, config, datetime(2027, 2, 10, 17, 1, tzinfo=VN)) == 1  # first working day
    assert await sweep_overdue(db, config, datetime(2027, 2, 11, 17, 1, tzinfo=VN)) == 1  # then to the province
    national_day = await add_document(db, province)
    await add_delivery(db, national_day, branch, datetime(2027, 9, 1, 18, tzinfo=VN))  # Wednesday evening
    assert await sweep_overdue(db, config, datetime(2027, 9, 2, 17, 1, tzinfo=VN)) == 0  # 2/9, every year
    assert await sweep_overdue(db, config, datetime(2027, 9, 3, 17, 1, tzinfo=VN)) == 1


async def test_holidays_are_read_from_the_setting_and_a_bad_one_is_named() -> None:
    from pydantic import ValidationError

    from service.settings import Settings

    settings = Settings(mail_holidays="2027-02-05, 2027-02-06 2027-04-16")
    assert MailConfig.from_settings(settings.model_copy(update={"smtp_host": ""})).holidays == {
        date(2027, 2, 5), date(2027, 2, 6), date(2027, 4, 16)}
    for bad in ("2027-02-04,5/2/2027", "2027-02-04 20270205", "2027-02-04,2027-W05-5"):
        with pytest.raises(ValidationError, match="entry 2 is not a date written YYYY-MM-DD") as refused:
            Settings(mail_holidays=bad)
        assert bad.split(",")[-1].split()[-1] not in str(refused.value.errors(include_input=False))
