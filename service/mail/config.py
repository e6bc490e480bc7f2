"""The relay's options as one frozen dataclass, built from :class:`Settings`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from service.settings import Settings

from .errors import MailConfigError

__all__ = ["ZIMBRA_MAX_MESSAGE_BYTES", "ZIMBRA_MAX_RECIPIENTS", "MailConfig"]

ZIMBRA_MAX_MESSAGE_BYTES = 10_240_000
ZIMBRA_MAX_RECIPIENTS = 1_000

Security = Literal["starttls", "tls", "none"]


@dataclass(frozen=True, slots=True)
class MailConfig:
    """Everything the transport, the message builder and the worker need."""

    host: str
    port: int = 587
    security: Security = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)  # never logged
    ca_file: Path | None = None
    timeout_s: float = 30.0
    local_hostname: str = "docexchange.localdomain"
    require_auth: bool = True
    max_message_bytes: int = ZIMBRA_MAX_MESSAGE_BYTES
    max_recipients: int = ZIMBRA_MAX_RECIPIENTS
    pool_size: int = 4
    idle_reconnect_s: float = 240.0  # Postfix closes idle sessions after 300 s
    mail_from: str = "docexchange@localhost"
    envelope_from: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    batch_size: int = 20
    poll_interval_s: float = 1.0
    lease_s: float = 300.0
    backoff_base_s: float = 60.0
    backoff_max_s: float = 3600.0
    lifetime_s: float = 5 * 24 * 3600.0
    attach_pdf: bool = True
    templates_dir: Path | None = None
    smime_cert: Path | None = None
    smime_key: Path | None = None
    smime_key_passphrase: str = field(default="", repr=False)
    overdue_sweep_s: float = 300.0
    workday_end_hour: int = 17
    holidays: frozenset[date] = frozenset()  # beyond the fixed ones of overdue.FIXED_HOLIDAYS
    data_dir: Path = Path("data")

    @classmethod
    def zimbra(cls, host: str, **overrides: object) -> MailConfig:
        """Zimbra/Postfix submission: 587 STARTTLS required, AUTH, 10,240,000 B, 1,000 rcpts."""
        base = cls(host=host, port=587, security="starttls", require_auth=True)
        # mypy checks replace()'s keywords against the fields; ours arrive as a **dict.
        return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]

    @classmethod
    def from_settings(cls, settings: Settings) -> MailConfig:
        """Build from settings; raises MailConfigError if the preset's rules are broken."""
        config = cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            ca_file=settings.smtp_ca_file,
            timeout_s=settings.smtp_timeout_s,
            local_hostname=settings.smtp_local_hostname or "docexchange.localdomain",
            require_auth=settings.smtp_preset == "zimbra",
            max_message_bytes=settings.smtp_max_message_bytes or ZIMBRA_MAX_MESSAGE_BYTES,
            max_recipients=settings.smtp_max_recipients or ZIMBRA_MAX_RECIPIENTS,
            pool_size=settings.smtp_pool_size,
            mail_from=settings.mail_from,
            envelope_from=settings.mail_envelope_from,
            public_base_url=settings.public_base_url,
            batch_size=settings.mail_batch_size,
            poll_interval_s=settings.mail_poll_interval_s,
            lease_s=settings.mail_lease_s,
            backoff_base_s=settings.mail_backoff_base_s,
            backoff_max_s=settings.mail_backoff_max_s,
            lifetime_s=settings.mail_lifetime_s,
            attach_pdf=settings.mail_attach_pdf,
            templates_dir=settings.mail_templates_dir,
            smime_cert=settings.mail_smime_cert,
            smime_key=settings.mail_smime_key,
            smime_key_passphrase=settings.mail_smime_key_passphrase,
            overdue_sweep_s=settings.mail_overdue_sweep_s,
            workday_end_hour=settings.mail_workday_end_hour,
            holidays=frozenset(settings.holiday_dates),
            data_dir=settings.data_dir,
        )
        if settings.smtp_preset == "zimbra":
            config.check_zimbra()
        return config

    def check_zimbra(self) -> None:
        """Raises MailConfigError unless TLS and AUTH are both in force."""
        if self.security == "none":
            raise MailConfigError("the zimbra preset requires STARTTLS (587) or TLS (465)")
        if self.host and not (self.username and self.password):
            raise MailConfigError("the zimbra preset requires DOCEX_SMTP_USERNAME and DOCEX_SMTP_PASSWORD")

    @property
    def sender(self) -> str:
        """The envelope sender (MAIL FROM): bounces come back here."""
        return self.envelope_from or self.mail_from

    @property
    def smime_enabled(self) -> bool:
        return self.smime_cert is not None and self.smime_key is not None

    @property
    def message_id_domain(self) -> str:
        return self.mail_from.rpartition("@")[2] or self.local_hostname
