"""IN lists sent straight to the driver: the SQL and arguments SQLAlchemy itself would send."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Dialect, bindparam, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite.aiosqlite import dialect as aiosqlite_dialect
from sqlmodel import col

from service.storage import driver
from service.units import Unit

# Two IN lists and a value the statement carries itself (a literal that needs no argument).
STATEMENT = select(col(Unit.id)).where(
    col(Unit.id).in_(bindparam("ids", expanding=True)) | col(Unit.code).in_(bindparam("codes", expanding=True)),
    col(Unit.level) == "Chi bộ",
)
CALLS: list[dict[str, Any]] = [
    {"ids": ["a", "b"], "codes": ["X"]},
    {"codes": ["Y", "Z"], "ids": ["c"]},  # the same lengths the other way round: another SQL
    {"ids": ["d", "e"], "codes": ["Q"]},  # the first call's lengths again: its SQL, these values
    {"ids": [], "codes": ["Q"]},
]


def _sqlalchemy(dialect: Dialect, params: dict[str, Any]) -> tuple[str, list[Any]]:
    compiled = STATEMENT.compile(dialect=dialect)
    state = compiled.construct_expanded_state(dict(params))
    processors = {**driver._plan(STATEMENT, dialect).binds, **state.processors}
    return state.statement, [processors[n](v) if n in processors else v
                             for n, v in zip(state.positiontup or [], state.positional_parameters, strict=True)]


@pytest.mark.parametrize("dialect", [aiosqlite_dialect(), asyncpg_dialect()], ids=lambda d: d.name)
def test_in_lists_of_any_length_bind_as_sqlalchemy_binds_them(dialect: Dialect) -> None:
    plan = driver._plan(STATEMENT, dialect)
    for params in CALLS:
        assert driver._bound(plan, params) == _sqlalchemy(dialect, params)
