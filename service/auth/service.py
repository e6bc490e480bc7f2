"""People and their bearer tokens: create, authenticate, revoke."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from service import audit
from service.errors import InvalidInputError, NotFoundError, ServiceError
from service.storage import driver
from service.storage.types import utcnow
from service.text import nfc
from service.units.errors import UsernameTakenError
from service.units.models import ApiToken, Unit, User

__all__ = [
    "ROLES",
    "AuthenticationError",
    "IssuedToken",
    "Principal",
    "authenticate",
    "authenticate_until",
    "check_still_valid",
    "create_user",
    "issue_token",
    "revoke_token",
    "token_hash",
    "token_state",
    "tokens_of",
    "update_user",
]

ROLES = frozenset({"clerk", "signer", "auditor", "admin"})
TOKEN_PREFIX = "dx_"


class AuthenticationError(ServiceError):
    """No valid bearer token: missing, unknown, expired or revoked."""

    status = 401
    code = "unauthenticated"
    title = "Authentication required"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user acting for one unit, with roles."""

    user_id: str
    unit_id: str
    unit_path: str
    roles: frozenset[str]
    audit_root_path: str
    full_name: str
    is_service: bool

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


@dataclass(frozen=True)
class IssuedToken:
    """A token as shown once to its owner; only the hash is stored."""

    id: str
    token: str
    expires_at: datetime


def token_hash(token: str) -> str:
    """How a token is stored and looked up: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


async def create_user(
    session: AsyncSession, *, unit: Unit, username: str, full_name: str, roles: list[str],
    position: str = "", email: str = "", audit_root: Unit | None = None, is_service: bool = False,
    actor_id: str | None = None,
) -> User:
    """Add a person (or an integration) to ``unit``; audited as done by ``actor_id`` (None:
    the operator's command line).

    Raises InvalidInputError for an unknown role, UsernameTakenError.
    """
    roles = _checked_roles(roles)
    username = nfc(username).lower()
    if (await session.execute(select(col(User.id)).where(col(User.username) == username))).first():
        raise UsernameTakenError(f"the username {username!r} is taken")
    user = User(
        unit_id=unit.id, username=username, full_name=nfc(full_name), position=nfc(position),
        email=email.strip(), roles=roles, is_service=is_service,
        audit_root_id=audit_root.id if audit_root else None,
    )
    session.add(user)
    await session.flush()
    await audit.append(session, action="user.created", actor_id=actor_id, unit_id=unit.id, object_id=user.id,
                       data={"username": user.username, "roles": user.roles, "is_service": is_service,
                             "audit_root_id": user.audit_root_id})
    return user


async def update_user(
    session: AsyncSession, user: User, *, full_name: str | None = None, position: str | None = None,
    email: str | None = None, roles: list[str] | None = None, active: bool | None = None,
    audit_root: Unit | None = None, actor_id: str | None = None,
) -> int:
    """Change what is given of ``user`` (audited with the fields before and after) and return how
    many of their tokens this revoked.

    Granting the signer role revokes the user's live tokens: a signer's token signs in their
    name, so it is issued to them in person, never one handed out while they could not sign.
    ``audit_root`` is where an auditor reads (None: keep it, or their own unit for a new auditor);
    dropping the auditor role drops it. Raises InvalidInputError for an unknown role.
    """
    new_roles = _checked_roles(user.roles if roles is None else roles)
    if audit_root is not None and "auditor" not in new_roles:
        raise InvalidInputError("only an auditor reads a subtree: give the auditor role as well, or leave out "
                                "audit_root")
    before = _changeable(user)
    user.roles = new_roles
    if "auditor" not in user.roles:
        user.audit_root_id = None
    elif audit_root is not None:
        user.audit_root_id = audit_root.id
    for name, value in (("full_name", full_name), ("position", position)):
        if value is not None:
            setattr(user, name, nfc(value))
    if email is not None:
        user.email = email.strip()
    if active is not None:
        user.active = active
    after = _changeable(user)
    if after == before:
        return 0
    revoked = 0
    if "signer" in user.roles and "signer" not in before["roles"]:
        revoked = await _revoke_live_tokens(session, user, actor_id)
    await audit.append(session, action="user.updated", actor_id=actor_id, unit_id=user.unit_id, object_id=user.id,
                       data={"before": {k: v for k, v in before.items() if after[k] != v},
                             "after": {k: v for k, v in after.items() if before[k] != v},
                             "tokens_revoked": revoked})
    await session.flush()
    return revoked


def _checked_roles(roles: list[str]) -> list[str]:
    """The roles, each once, in order. Raises InvalidInputError for none or an unknown one."""
    bad = sorted(set(roles) - ROLES)
    if bad or not roles:
        raise InvalidInputError(f"roles must be some of {', '.join(sorted(ROLES))}; got {bad or 'none'}")
    return sorted(set(roles))


def _changeable(user: User) -> dict[str, Any]:
    return {"full_name": user.full_name, "position": user.position, "email": user.email,
            "roles": list(user.roles), "active": user.active, "audit_root_id": user.audit_root_id}


async def _revoke_live_tokens(session: AsyncSession, user: User, actor_id: str | None) -> int:
    now = utcnow()
    live = (await session.execute(select(ApiToken).where(
        col(ApiToken.user_id) == user.id, col(ApiToken.revoked_at).is_(None), col(ApiToken.expires_at) > now,
    ))).scalars().all()
    for row in live:
        row.revoked_at = now
        await audit.append(session, action="token.revoked", actor_id=actor_id, object_id=row.id,
                           data={"user_id": user.id, "reason": "granted the signer role"})
    return len(live)


async def tokens_of(session: AsyncSession, user_id: str) -> list[ApiToken]:
    """Every token issued to a user, newest first (hashes only: no token can be shown again)."""
    stmt = select(ApiToken).where(col(ApiToken.user_id) == user_id).order_by(
        col(ApiToken.created_at).desc(), col(ApiToken.id))
    return list((await session.execute(stmt)).scalars())


def token_state(row: ApiToken, now: datetime | None = None) -> str:
    """``revoked``, ``expired`` or ``active``."""
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at <= (now or utcnow()) else "active"


async def issue_token(session: AsyncSession, user: User, *, days: int, label: str = "",
                      actor_id: str | None = None) -> IssuedToken:
    """A new random bearer token for ``user``, valid ``days`` days (audited; never the token)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=token_hash(token), label=nfc(label),
                   expires_at=utcnow() + timedelta(days=days))
    session.add(row)
    await session.flush()
    await audit.append(session, action="token.issued", actor_id=actor_id, unit_id=user.unit_id, object_id=row.id,
                       data={"user_id": user.id, "username": user.username, "label": row.label,
                             "expires_at": row.expires_at.isoformat()})
    return IssuedToken(row.id, token, row.expires_at)


async def revoke_token(session: AsyncSession, token_id: str, *, unit_id: str | None,
                       actor_id: str | None = None) -> None:
    """Revoke a token (audited the first time); ``unit_id`` limits it to users of that unit.
    Raises NotFoundError."""
    stmt = select(ApiToken).join(User, col(User.id) == col(ApiToken.user_id)).where(col(ApiToken.id) == token_id)
    if unit_id is not None:
        stmt = stmt.where(col(User.unit_id) == unit_id)
    row = (await session.execute(stmt)).scalars().first()
    if row is None:
        raise NotFoundError("no such token")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await audit.append(session, action="token.revoked", actor_id=actor_id, object_id=row.id,
                           data={"user_id": row.user_id})
    await session.flush()


async def authenticate(session: AsyncSession, token: str) -> Principal:
    """The principal behind a bearer token. Raises AuthenticationError."""
    return (await authenticate_until(session, token))[0]


async def authenticate_until(session: AsyncSession, token: str) -> tuple[Principal, datetime]:
    """The principal behind a bearer token and when the token expires. Raises AuthenticationError.

    One statement of plain columns: it costs what a row costs, not what three ORM objects do."""
    rows = await driver.fetch(session, _BY_TOKEN, {"token_hash": token_hash(token)})
    if not rows:
        raise AuthenticationError("the bearer token is not known; ask your unit administrator for a token")
    (revoked_at, expires_at, user_id, roles, full_name, is_service, active, audit_root_id, unit_id, unit_path,
     audit_root_path) = rows[0]
    if revoked_at is not None or expires_at <= utcnow():
        raise AuthenticationError("the bearer token has expired or was revoked; ask for a new one")
    if not active:
        raise AuthenticationError("this account is deactivated; ask your unit administrator to activate it")
    # An auditor reads the subtree granted (its own unit's when none, or when the unit is gone).
    reads_below = "auditor" in roles and audit_root_id not in (None, unit_id) and audit_root_path is not None
    return Principal(
        user_id=user_id, unit_id=unit_id, unit_path=unit_path, roles=frozenset(roles),
        audit_root_path=audit_root_path if reads_below else unit_path, full_name=full_name,
        is_service=bool(is_service),
    ), expires_at


async def check_still_valid(session: AsyncSession, hashed: str) -> None:
    """Raises AuthenticationError unless the token of ``token_hash`` is still live and its user
    active, read in ``session``'s transaction: run just before a request commits, it refuses
    the changes of a token revoked (by any process) while the request ran."""
    rows = await driver.fetch(session, _LIVE, {"token_hash": hashed})
    if not rows:
        raise AuthenticationError("the bearer token is not known; ask your unit administrator for a token")
    revoked_at, expires_at, active = rows[0]
    if revoked_at is not None or expires_at <= utcnow():
        raise AuthenticationError("the bearer token expired or was revoked while the request ran; nothing was "
                                  "changed; ask for a new one")
    if not active:
        raise AuthenticationError("this account was deactivated while the request ran; nothing was changed")


_LIVE = (select(col(ApiToken.revoked_at), col(ApiToken.expires_at), col(User.active))
         .join(User, col(User.id) == col(ApiToken.user_id))
         .where(col(ApiToken.token_hash) == bindparam("token_hash")))
_AUDIT_ROOT = aliased(Unit)
_BY_TOKEN = (
    select(col(ApiToken.revoked_at), col(ApiToken.expires_at), col(User.id), col(User.roles), col(User.full_name),
           col(User.is_service), col(User.active), col(User.audit_root_id), col(Unit.id), col(Unit.path),
           col(_AUDIT_ROOT.path))
    .join(User, col(User.id) == col(ApiToken.user_id))
    .join(Unit, col(Unit.id) == col(User.unit_id))
    .outerjoin(_AUDIT_ROOT, col(_AUDIT_ROOT.id) == col(User.audit_root_id))
    .where(col(ApiToken.token_hash) == bindparam("token_hash"))
)
