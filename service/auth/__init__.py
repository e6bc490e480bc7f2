"""Who is calling: users, bearer tokens, principals."""

from service.auth.service import (
    ROLES,
    AuthenticationError,
    IssuedToken,
    Principal,
    authenticate,
    create_user,
    issue_token,
    revoke_token,
)

__all__ = [
    "ROLES",
    "AuthenticationError",
    "IssuedToken",
    "Principal",
    "authenticate",
    "create_user",
    "issue_token",
    "revoke_token",
]
