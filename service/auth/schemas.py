"""What creating a user or a token takes, checked the same way for the API and the CLI."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from service.settings import MAX_TOKEN_DAYS
from service.text import PlainText, blank

__all__ = ["NewToken", "NewUser"]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


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
        value = value.strip()
        if value and not _EMAIL.fullmatch(value):
            raise ValueError(f"{value!r} is not an e-mail address (name@domain)")
        return value


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: PlainText = Field(default="", max_length=200)
    days: int | None = Field(default=None, ge=1, le=MAX_TOKEN_DAYS)
