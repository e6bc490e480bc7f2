"""Typed settings, read from ``DOCEX_*`` environment variables.

Built once by the app factory or the CLI and passed down; never at import time.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MAX_TOKEN_DAYS", "PLACEHOLDER_SECRET", "Settings"]

PLACEHOLDER_SECRET = "change-me"
MAX_TOKEN_DAYS = 3650  # a token lives ten years at most


_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Settings(BaseSettings):
    """Every setting of the service. See the README's configuration table."""

    # hide_input_in_errors: a refusal would otherwise quote every setting, secrets included.
    # env_ignore_empty: `DOCEX_SMTP_CA_FILE=` means the default (no file), not the current directory.
    model_config = SettingsConfigDict(env_prefix="DOCEX_", extra="ignore", hide_input_in_errors=True,
                                      env_ignore_empty=True)

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str = Field(default="", repr=False)
    database_pool_size: int = Field(default=10, ge=1)
    max_upload_bytes: int = Field(default=300 * 1024 * 1024, ge=1024)
    routing_rules: str = "parent,children,siblings,descendants"
    public_base_url: str = "http://127.0.0.1:8000"
    token_default_days: int = Field(default=365, ge=1, le=MAX_TOKEN_DAYS)
    auth_cache_s: float = Field(default=10.0, ge=0)
    key_passphrase: str = Field(default=PLACEHOLDER_SECRET, repr=False)
    keys_dir: Path = Path("keys")
    log_level: str = "INFO"
    embedded_worker: bool = True
    auto_migrate: bool = True
    # Signatures (see docs/signing.md).
    signing_level: Literal["B-B", "B-T", "B-LT", "B-LTA"] = "B-T"
    dev_pki: bool = True
    trust_roots_file: Path | None = None
    tsa_url: str = ""
    pkcs11_module: str = ""
    pkcs11_token_label: str = ""
    pkcs11_pin: str = Field(default="", repr=False)
    verify_on_send: bool = True
    verify_timeout_s: float = Field(default=60.0, gt=0)
    verify_memory_mb: int = Field(default=1536, ge=256)
    # Mail relay (see docs/operations.md): filled in by the mail package.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = Field(default="", repr=False)
    smtp_ca_file: Path | None = None
    smtp_timeout_s: float = 30.0
    mail_from: str = "docexchange@localhost"
    smtp_preset: Literal["zimbra", "custom"] = "zimbra"
    smtp_pool_size: int = Field(default=4, ge=1, le=64)
    smtp_local_hostname: str = ""
    smtp_max_message_bytes: int | None = Field(default=None, ge=10_000)
    smtp_max_recipients: int | None = Field(default=None, ge=1)
    mail_envelope_from: str = ""
    mail_batch_size: int = Field(default=20, ge=1, le=1000)
    mail_poll_interval_s: float = Field(default=1.0, gt=0)
    mail_lease_s: float = Field(default=300.0, gt=0)
    mail_backoff_base_s: float = Field(default=60.0, gt=0)
    mail_backoff_max_s: float = Field(default=3600.0, gt=0)
    mail_lifetime_s: float = Field(default=5 * 24 * 3600.0, gt=0)
    mail_attach_pdf: bool = True
    mail_templates_dir: Path | None = None
    mail_smime_cert: Path | None = None
    mail_smime_key: Path | None = None
    mail_smime_key_passphrase: str = Field(default="", repr=False)
    mail_overdue_sweep_s: float = Field(default=300.0, gt=0)
    mail_workday_end_hour: int = Field(default=17, ge=0, le=23)
    # Days off besides weekends and the fixed solar holidays: Tết, the Hùng Kings' day, and the
    # days the government moves each year — ISO dates separated by commas or spaces.
    mail_holidays: str = ""

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment == "production" and self.key_passphrase == PLACEHOLDER_SECRET:
            raise ValueError("DOCEX_KEY_PASSPHRASE must be set in production")
        if self.environment == "production" and self.dev_pki and self.trust_roots_file is None:
            raise ValueError(
                "production needs the real trust roots: set DOCEX_TRUST_ROOTS_FILE and DOCEX_DEV_PKI=false")
        return self

    @field_validator("mail_holidays")
    @classmethod
    def _dates(cls, value: str) -> str:
        for number, part in enumerate(value.replace(",", " ").split(), start=1):
            try:
                if not _ISO_DAY.fullmatch(part):
                    raise ValueError(part)
                date.fromisoformat(part)
            except ValueError:
                raise ValueError(f"entry {number} is not a date written YYYY-MM-DD (2027-02-05); separate the dates "
                                 "by commas") from None
        return value

    @property
    def holiday_dates(self) -> list[date]:
        """DOCEX_MAIL_HOLIDAYS as dates."""
        return [date.fromisoformat(part) for part in self.mail_holidays.replace(",", " ").split()]

    @property
    def effective_database_url(self) -> str:
        """The configured database, or an SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'docexchange.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"
