"""Who is calling: users, bearer tokens, principals."""

from service.auth.cache import PrincipalCache
from service.auth.schemas import NewToken, NewUser, UserChange
from service.auth.service import (
    ROLES,
    AuthenticationError,
    IssuedToken,
    Principal,
    authenticate,
    authenticate_until,
    check_still_valid,
    create_user,
    issue_token,
    revoke_token,
    token_hash,
    token_state,
    tokens_of,
    update_user,
)

__all__ = [
    "ROLES",
    "AuthenticationError",
    "IssuedToken",
    "NewToken",
    "NewUser",
    "Principal",
    "PrincipalCache",
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
    "UserChange",
]
