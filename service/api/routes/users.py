"""People and tokens of the admin's unit (tokens are shown once)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import col

from service import auth, units
from service.api.deps import CurrentPrincipal, Principals, SettingsDep, Tx, require_roles
from service.auth import NewToken, NewUser, Principal, UserChange
from service.errors import NotFoundError, PermissionDeniedError
from service.text import to_vn_iso

router = APIRouter(tags=["people"])
Admin = Depends(require_roles("admin"))


def _user_view(u: units.User) -> dict[str, Any]:
    return {"id": u.id, "username": u.username, "full_name": u.full_name, "position": u.position,
            "email": u.email, "roles": u.roles, "unit_id": u.unit_id, "is_service": u.is_service,
            "active": u.active, "audit_root_id": u.audit_root_id}


async def _scoped_unit(tx: Tx, principal: Principal, key: str | None) -> units.Unit:
    return await units.unit_in_scope(tx.session, key or principal.unit_id, principal.unit_path)


_AuditRoot = aliased(units.Unit)


def _managed_by(principal: Principal) -> ColumnElement[bool]:
    """Users an admin manages: of its subtree, and reaching no further (an auditor seated in
    a commune may read the whole province: a token for them is the province admin's to give)."""
    return and_(col(units.Unit.path).startswith(principal.unit_path),
                or_(col(units.User.audit_root_id).is_(None), col(_AuditRoot.path).startswith(principal.unit_path)))


def _with_units(stmt: Select[Any]) -> Select[Any]:
    return (stmt.join(units.Unit, col(units.Unit.id) == col(units.User.unit_id))
            .outerjoin(_AuditRoot, col(_AuditRoot.id) == col(units.User.audit_root_id)))


async def _scoped_user(tx: Tx, principal: Principal, user_id: str, *, lock: bool = False) -> units.User:
    """A user the admin manages; ``lock``: the row is held until commit (PostgreSQL), so that a
    change of roles and a token issued at the same moment see each other: a signer's token is
    never issued by an admin, however the two requests interleave."""
    stmt = _with_units(select(units.User)).where(col(units.User.id) == user_id, _managed_by(principal))
    if lock:
        stmt = stmt.with_for_update(of=units.User)
    user: units.User | None = (await tx.session.execute(stmt)).scalars().first()
    if user is None:
        raise NotFoundError("no such user in your unit")
    return user


def _token_view(row: units.ApiToken) -> dict[str, Any]:
    return {"id": row.id, "label": row.label, "state": auth.token_state(row),
            "created_at": to_vn_iso(row.created_at), "expires_at": to_vn_iso(row.expires_at),
            "revoked_at": to_vn_iso(row.revoked_at) if row.revoked_at else None}


@router.get("/me", summary="Who the token belongs to")
async def me(principal: CurrentPrincipal) -> dict[str, Any]:
    return {"user_id": principal.user_id, "unit_id": principal.unit_id, "roles": sorted(principal.roles),
            "full_name": principal.full_name, "is_service": principal.is_service}


@router.get("/me/tokens", summary="The caller's own tokens (never the tokens themselves)")
async def my_tokens(tx: Tx, principal: CurrentPrincipal) -> dict[str, Any]:
    return {"tokens": [_token_view(t) for t in await auth.tokens_of(tx.session, principal.user_id)]}


@router.get("/users", summary="Users of the admin's unit and the units below it")
async def list_users(tx: Tx, principal: Principal = Admin) -> dict[str, Any]:
    stmt = select(units.User).join(units.Unit, col(units.Unit.id) == col(units.User.unit_id)).where(
        col(units.Unit.path).startswith(principal.unit_path)).order_by(col(units.User.username))
    return {"users": [_user_view(u) for u in (await tx.session.execute(stmt)).scalars()]}


@router.post("/users", status_code=201, summary="Add a user (or an integration) to a unit")
async def create_user(body: NewUser, tx: Tx, principal: Principal = Admin) -> dict[str, Any]:
    unit = await _scoped_unit(tx, principal, body.unit)
    root = await _scoped_unit(tx, principal, body.audit_root) if body.audit_root else None
    user = await auth.create_user(tx.session, unit=unit, username=body.username, full_name=body.full_name,
                                  roles=body.roles, position=body.position, email=body.email,
                                  audit_root=root, is_service=body.is_service, actor_id=principal.user_id)
    await tx.commit()
    return _user_view(user)


@router.get("/users/{user_id}", summary="One user the admin manages")
async def get_user(user_id: str, tx: Tx, principal: Principal = Admin) -> dict[str, Any]:
    return _user_view(await _scoped_user(tx, principal, user_id))


@router.patch("/users/{user_id}", summary="Change a user's name, roles or reach, or deactivate them")
async def update_user(user_id: str, body: UserChange, tx: Tx, principals: Principals,
                      principal: Principal = Admin) -> dict[str, Any]:
    user = await _scoped_user(tx, principal, user_id, lock=True)
    if user.id == principal.user_id and body.given() & {"roles", "active", "audit_root"}:
        raise PermissionDeniedError("no administrator changes their own roles or deactivates themselves: "
                                    "ask another administrator, or the operator (docexchange users update)")
    root = await _scoped_unit(tx, principal, body.audit_root) if body.audit_root else None
    revoked = await auth.update_user(tx.session, user, full_name=body.full_name, position=body.position,
                                     email=body.email, roles=body.roles, active=body.active, audit_root=root,
                                     actor_id=principal.user_id)
    await tx.commit()
    principals.clear()
    return {**_user_view(user), "tokens_revoked": revoked}


@router.get("/users/{user_id}/tokens", summary="A user's tokens (never the tokens themselves)")
async def list_tokens(user_id: str, tx: Tx, principal: Principal = Admin) -> dict[str, Any]:
    user = await _scoped_user(tx, principal, user_id)
    return {"tokens": [_token_view(t) for t in await auth.tokens_of(tx.session, user.id)]}


@router.post("/users/{user_id}/tokens", status_code=201,
             summary="Issue a bearer token; the token is in this answer only")
async def create_token(user_id: str, body: NewToken, tx: Tx, settings: SettingsDep,
                       principal: Principal = Admin) -> dict[str, Any]:
    user = await _scoped_user(tx, principal, user_id, lock=True)
    if "signer" in user.roles and user.id != principal.user_id:
        # The token signs documents in the signer's name with the signer's key, unseen by them.
        raise PermissionDeniedError(
            f"{user.full_name} signs documents: a token of theirs signs in their name, so no administrator issues "
            f"it. The operator does, for the signer in person: docexchange tokens create --username {user.username}")
    issued = await auth.issue_token(tx.session, user, days=body.days or settings.token_default_days, label=body.label,
                                    actor_id=principal.user_id)
    await tx.commit()
    return {"id": issued.id, "token": issued.token, "expires_at": to_vn_iso(issued.expires_at)}


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke a token", response_class=Response)
async def revoke(token_id: str, tx: Tx, principal: CurrentPrincipal, principals: Principals) -> Response:
    # Admins revoke tokens of their subtree; anyone may revoke their own.
    if principal.has("admin"):
        stmt = _with_units(select(col(units.ApiToken.id)).join(
            units.User, col(units.User.id) == col(units.ApiToken.user_id))).where(
            col(units.ApiToken.id) == token_id, _managed_by(principal))
    else:
        stmt = select(col(units.ApiToken.id)).where(col(units.ApiToken.id) == token_id,
                                               col(units.ApiToken.user_id) == principal.user_id)
    if (await tx.session.execute(stmt)).first() is None:
        raise NotFoundError("no such token")
    await auth.revoke_token(tx.session, token_id, unit_id=None, actor_id=principal.user_id)
    tx.only_takes_access_away()
    await tx.commit()
    principals.clear()
    return Response(status_code=204)
