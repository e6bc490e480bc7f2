"""The ``docexchange`` command: serve, units, tokens, audit, database."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from service import audit, auth, units
from service.documents.blobs import upgrade_layout
from service.errors import InvalidInputError, ServiceError
from service.plugins import import_optional
from service.settings import Settings
from service.storage.db import database_problem, existing_database, is_sqlite, shown_url
from service.storage.migrate import upgrade
from service.text import nfc, to_vn_iso

__all__ = ["main"]

# The CLI option that carries each field of the API's request models, to name it in refusals.
_OPTIONS = {"username": "--username", "full_name": "--name", "roles": "--role", "email": "--email",
            "unit": "--unit", "days": "--days", "label": "--label", "position": "--position",
            "audit_root": "--audit-root", "active": "--activate/--deactivate"}


_Model = TypeVar("_Model", bound=BaseModel)


def _settings() -> Settings:
    return Settings()


async def _with_session(fn: Callable[[Any], Awaitable[Any]], commit: bool = True) -> Any:
    """Run ``fn`` in one transaction of the existing database (see storage.db.existing_database)."""
    async with existing_database(_settings().effective_database_url) as db, db.session() as session:
        result = await fn(session)
        if commit:
            await session.commit()
        return result


def _validated(model: type[_Model], **fields: Any) -> _Model:
    """The CLI arguments checked by the API's own request model, so both refuse the same
    input. Raises InvalidInputError naming the option(s) and what is wrong."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = (f"{_option(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        raise InvalidInputError("; ".join(problems)) from exc


def _option(loc: tuple[int | str, ...]) -> str:
    return _OPTIONS.get(str(loc[0]), str(loc[0])) if loc else "input"


def _migrate() -> Settings:
    settings = _settings()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the documents are no other user's
    upgrade(settings.effective_database_url)
    upgrade_layout(settings.blob_dir)
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.api.app import create_app
    from service.api.protocols import HttpToolsProblemProtocol

    # DOCEX_AUTO_MIGRATE=false: the operator runs `docexchange db upgrade` once, with every
    # instance of the older release stopped; instances started together must not race it.
    settings = _settings()
    if settings.auto_migrate:
        settings = _migrate()
    if args.demo:
        from service.demo import load_demo

        token_file = settings.data_dir / "demo-tokens.env"
        count = asyncio.run(_with_session(lambda s: load_demo(s, token_file)))
        print(f"demo data loaded; tokens in {token_file}" if count else f"demo data already present ({token_file})")
    if args.workers > 1:
        if is_sqlite(settings.effective_database_url):
            print("SQLite is served by one process: run one worker, or point DOCEX_DATABASE_URL at PostgreSQL "
                  "to run several", file=sys.stderr)
            return 2
        # Each worker process builds its own app from the same DOCEX_* environment.
        os.environ["DOCEX_AUTO_MIGRATE"] = "false"  # done above, once
        uvicorn.run("service.api.app:create_app", factory=True, workers=args.workers, host=args.host,
                    port=args.port, log_level="warning", access_log=False, http=HttpToolsProblemProtocol)
        return 0
    app = create_app(settings.model_copy(update={"auto_migrate": False}))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                http=HttpToolsProblemProtocol)
    return 0


def cmd_db_upgrade(_: argparse.Namespace) -> int:
    _migrate()
    print("database schema is up to date")
    return 0


def cmd_units_import(args: argparse.Namespace) -> int:
    _migrate()
    specs = units.parse_tree(Path(args.file).read_bytes(), args.file)
    result = asyncio.run(_with_session(lambda s: units.import_tree(s, specs)))
    print(f"{result.created} units created, {result.updated} updated")
    return 0


def cmd_units_export(args: argparse.Namespace) -> int:
    specs = asyncio.run(_with_session(units.export_tree, commit=False))
    text = units.dump_csv(specs) if args.format == "csv" else units.dump_json(specs)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    body = _validated(auth.NewUser, unit=args.unit, username=args.username, full_name=args.name, roles=args.role,
                      email=args.email or "", is_service=args.service)

    async def run(session: Any) -> Any:
        unit = await units.get_unit(session, args.unit)
        user = await auth.create_user(session, unit=unit, username=body.username, full_name=body.full_name,
                                      roles=body.roles, email=body.email, is_service=body.is_service)
        return user.id

    print(asyncio.run(_with_session(run)))
    return 0


async def _user_named(session: Any, username: str) -> units.User:
    from sqlalchemy import select

    username = nfc(username).lower()  # as create_user stores it
    user: units.User | None = (await session.execute(
        select(units.User).where(col(units.User.username) == username))).scalars().first()
    if user is None:
        raise units.UnitNotFoundError(f"no user {username!r}: check the name (docexchange users list), or add the "
                                      "user with `docexchange users create`")
    return user


def cmd_users_list(args: argparse.Namespace) -> int:
    async def run(session: Any) -> list[tuple[units.User, str]]:
        from sqlalchemy import select

        stmt = select(units.User, col(units.Unit.code)).join(units.Unit, col(units.Unit.id) == col(units.User.unit_id))
        if args.unit:
            unit = await units.get_unit(session, args.unit)
            stmt = stmt.where(col(units.Unit.path).startswith(unit.path))
        return [(u, code) for u, code in (await session.execute(stmt.order_by(col(units.User.username))))]

    rows = asyncio.run(_with_session(run, commit=False))
    for user, code in rows:
        flags = "" if user.active else "  (deactivated)"
        print(f"{user.username}\t{code}\t{','.join(user.roles)}\t{user.full_name}{flags}")
    print(f"# {len(rows)} users", file=sys.stderr)
    return 0


def cmd_users_update(args: argparse.Namespace) -> int:
    if all(v is None for v in (args.name, args.position, args.email, args.role, args.active, args.audit_root)):
        raise InvalidInputError("name what to change: --name, --position, --email, --role, --audit-root, "
                                "--activate or --deactivate")
    body = _validated(auth.UserChange, full_name=args.name, position=args.position, email=args.email,
                      roles=args.role, active=args.active, audit_root=args.audit_root)

    async def run(session: Any) -> int:
        user = await _user_named(session, args.username)
        root = await units.get_unit(session, body.audit_root) if body.audit_root else None
        return await auth.update_user(session, user, full_name=body.full_name, position=body.position,
                                      email=body.email, roles=body.roles, active=body.active, audit_root=root)

    revoked = asyncio.run(_with_session(run))
    print("updated" + (f"; {revoked} tokens revoked (a signer's token is issued to them in person)" if revoked else ""))
    return 0


def cmd_tokens_list(args: argparse.Namespace) -> int:
    async def run(session: Any) -> list[units.ApiToken]:
        return await auth.tokens_of(session, (await _user_named(session, args.username)).id)

    for row in asyncio.run(_with_session(run, commit=False)):
        print(f"{row.id}\t{auth.token_state(row)}\texpires {to_vn_iso(row.expires_at)}\t{row.label}")
    return 0


def cmd_tokens_create(args: argparse.Namespace) -> int:
    body = _validated(auth.NewToken, days=args.days, label=args.label)
    days = body.days or _settings().token_default_days  # as the API's default

    async def run(session: Any) -> Any:
        return await auth.issue_token(session, await _user_named(session, args.username), days=days,
                                      label=body.label)

    issued = asyncio.run(_with_session(run))
    print(issued.token)
    print(f"# token id {issued.id}, expires {to_vn_iso(issued.expires_at)}; shown once", file=sys.stderr)
    return 0


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    asyncio.run(_with_session(lambda s: auth.revoke_token(s, args.token_id, unit_id=None)))
    print("revoked")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    report = asyncio.run(_with_session(audit.verify_chain, commit=False))
    if args.json:
        print(json.dumps(report.__dict__))
    elif report.ok:
        print(f"audit chain intact: {report.entries} entries")
    else:
        print(f"audit chain BROKEN at entry #{report.first_broken_seq}: {report.reason}")
    return 0 if report.ok else 1


def _port(text: str) -> int:
    """A TCP port, 1 to 65535 (a larger number was taken modulo 65536 and served elsewhere)."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give a number from 1 to 65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docexchange", description="Secure document exchange service")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the API (migrates the database first)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument("--demo", action="store_true", help="load demo data and write demo tokens")
    p.add_argument("--workers", type=int, default=1, choices=range(1, 65), metavar="N",
                   help="API processes (PostgreSQL only; one per core is usual)")
    p.set_defaults(func=cmd_serve)
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_cmd", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)
    u = sub.add_parser("units", help="the unit tree").add_subparsers(dest="units_cmd", required=True)
    p = u.add_parser("import", help="create or update units from a JSON or CSV file")
    p.add_argument("file")
    p.set_defaults(func=cmd_units_import)
    p = u.add_parser("export", help="write the tree as JSON or CSV")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_units_export)
    us = sub.add_parser("users", help="people").add_subparsers(dest="users_cmd", required=True)
    p = us.add_parser("create", help="add a user to a unit")
    p.add_argument("--unit", required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--role", action="append", required=True, choices=sorted(auth.ROLES))
    p.add_argument("--email")
    p.add_argument("--service", action="store_true", help="an integration account")
    p.set_defaults(func=cmd_users_create)
    p = us.add_parser("list", help="users, with their unit and roles")
    p.add_argument("--unit", help="only this unit and the units below it")
    p.set_defaults(func=cmd_users_list)
    p = us.add_parser("update", help="change a user's name, roles or reach, or deactivate them")
    p.add_argument("--username", required=True)
    p.add_argument("--name")
    p.add_argument("--position")
    p.add_argument("--email")
    p.add_argument("--role", action="append", choices=sorted(auth.ROLES),
                   help="the user's roles from now on (repeat for several)")
    p.add_argument("--audit-root", help="for auditors: the code of the subtree they read")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--deactivate", dest="active", action="store_false", default=None,
                       help="refuse every token of theirs until activated again")
    state.add_argument("--activate", dest="active", action="store_true", default=None)
    p.set_defaults(func=cmd_users_update)
    t = sub.add_parser("tokens", help="bearer tokens").add_subparsers(dest="tokens_cmd", required=True)
    p = t.add_parser("create", help="issue a token (printed once)")
    p.add_argument("--username", required=True)
    p.add_argument("--days", type=int, help="valid this many days (default: DOCEX_TOKEN_DEFAULT_DAYS)")
    p.add_argument("--label", default="")
    p.set_defaults(func=cmd_tokens_create)
    p = t.add_parser("list", help="a user's tokens: id, state, expiry, label (never the token)")
    p.add_argument("--username", required=True)
    p.set_defaults(func=cmd_tokens_list)
    p = t.add_parser("revoke", help="revoke a token by id")
    p.add_argument("token_id")
    p.set_defaults(func=cmd_tokens_revoke)
    a = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_cmd", required=True)
    p = a.add_parser("verify", help="check the hash chain; exit 1 if broken")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit_verify)
    _optional_commands(sub)
    return parser


def _optional_commands(sub: Any) -> None:
    for name in ("service.signing.cli", "service.mail.cli"):
        module = import_optional(name)
        if module is not None:
            module.add_commands(sub, _settings)


def _setting_problems(exc: ValidationError) -> list[str]:
    """Each bad setting named as it is set, by its environment variable (never its value: it
    may be a passphrase or a PIN)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = "DOCEX_" + str(error["loc"][0]).upper() if error["loc"] else "a DOCEX_ setting"
        problems.append(f"{name}: {error['msg']}; see the configuration table in the README")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ServiceError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a DOCEX_* setting (the request models' are InvalidInputError)
        for line in _setting_problems(exc):
            print(f"error: {line}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:  # e.g. the database named in the URL does not exist, or no such driver
        where = shown_url(_settings().effective_database_url)
        print(f"error: the database {where} cannot be used ({database_problem(exc)}): check DOCEX_DATABASE_URL",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
