"""What creating a user or a token takes, checked the same way for the API and the CLI."""

from __future__ import annotations

import re

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from service.auth.service import ROLES
from service.settings import MAX_TOKEN_DAYS
from service.text import PlainText, blank

__all__ = ["NewToken", "NewUser", "UserChange"]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _email(value: str) -> str:
    value = value.strip()
    if value and not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an e-mail address (name@domain)")
    return value


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "username": "vanthu.tanlap", "full_name": "Trần Thị Bình", "roles": ["clerk"],
        "position": "Văn thư", "email": "vanthu.tanlap@tinhuy.vn"}})

    # Their least length is checked by _not_blank, which says what is wrong in words.
    username: PlainText = Field(max_length=200, json_schema_extra={"minLength": 2})
    full_name: PlainText = Field(max_length=300, json_schema_extra={"minLength": 1})
    roles: list[str] = Field(min_length=1)
    position: PlainText = Field(default="", max_length=300)
    email: PlainText = Field(default="", max_length=300)
    unit: PlainText | None = Field(default=None, max_length=64,
                                  description="A unit under the admin's (default: the admin's own)")
    audit_root: PlainText | None = Field(default=None, max_length=64,
                                        description="For auditors: the subtree they read")
    is_service: StrictBool = Field(default=False, description="An integration account (service token)")

    @field_validator("username", "full_name")
    @classmethod
    def _not_blank(cls, value: str, info: ValidationInfo) -> str:
        if blank(value) or len(value.strip()) < (2 if info.field_name == "username" else 1):
            raise ValueError("must not be blank: type the name")
        return value.strip()

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        return _email(value)


class UserChange(BaseModel):
    """What an administrator may change of a user: the fields given, the rest kept."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "roles": ["clerk", "signer"], "position": "Phó Bí thư"}})

    full_name: PlainText | None = Field(default=None, max_length=300)
    position: PlainText | None = Field(default=None, max_length=300)
    email: PlainText | None = Field(default=None, max_length=300)
    roles: list[str] | None = Field(default=None, min_length=1)
    active: StrictBool | None = Field(default=None, description="false: every token of theirs is refused until "
                                                                "they are active again")
    audit_root: PlainText | None = Field(default=None, max_length=64,
                                        description="For auditors: the subtree they read")

    @field_validator("full_name")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        if value is not None and blank(value):
            raise ValueError("must not be blank: type the name")
        return value.strip() if value is not None else None

    @field_validator("email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else _email(value)

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: list[str] | None) -> list[str] | None:
        bad = sorted(set(value or ()) - ROLES)
        if bad:
            raise ValueError(f"roles must be some of {', '.join(sorted(ROLES))}; {', '.join(bad)} is not one")
        return value

    @model_validator(mode="after")
    def _something(self) -> UserChange:
        if not self.given():
            raise ValueError(f"name what to change: one or more of {', '.join(type(self).model_fields)}")
        return self

    def given(self) -> set[str]:
        """The fields the request names (null counts as not given)."""
        return {name for name in self.model_fields_set if getattr(self, name) is not None}


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: PlainText = Field(default="", max_length=200)
    days: StrictInt | None = Field(default=None, ge=1, le=MAX_TOKEN_DAYS)  # true is not one day
