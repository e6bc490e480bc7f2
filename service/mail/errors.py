"""The mail package's errors, rooted at :class:`service.errors.ServiceError`.

    MailError
    ├── MailConfigError          the relay settings are unusable
    ├── SmtpError                an SMTP exchange failed (code, reply)
    │   ├── SmtpTemporaryError   4xx, connection lost, timeout: try again later
    │   └── SmtpPermanentError   5xx: do not try this recipient again
    ├── NotificationNotFound     no such notification visible to the caller
    └── NotificationStateError   the notification cannot make that transition

aiosmtplib's exceptions are translated in ``smtp.py`` only.
"""

from __future__ import annotations

from service.errors import ConflictError, NotFoundError, ServiceError

__all__ = [
    "MailConfigError",
    "MailError",
    "NotificationNotFound",
    "NotificationStateError",
    "SmtpError",
    "SmtpPermanentError",
    "SmtpTemporaryError",
]


class MailError(ServiceError):
    """Root of the mail package's errors."""

    status = 500
    code = "mail-error"
    title = "Mail gateway error"


class MailConfigError(MailError):
    """The relay cannot be used with these settings (missing host, bad key …)."""

    code = "mail-config"
    title = "Mail relay misconfigured"


class SmtpError(MailError):
    """An SMTP exchange failed; ``code`` is the server's reply code (0: no reply)."""

    title = "SMTP exchange failed"
    status = 502
    code = "smtp-error"

    def __init__(self, code: int, reply: str, *, stage: str = "") -> None:
        super().__init__(f"{stage + ': ' if stage else ''}{code} {reply}".strip())
        self.smtp_code = code
        self.reply = reply
        self.stage = stage


class SmtpTemporaryError(SmtpError):
    """Worth trying again later: a 4xx reply, a lost connection or a timeout."""


class SmtpPermanentError(SmtpError):
    """A 5xx reply: the server will not take this (for this recipient)."""


class NotificationNotFound(MailError, NotFoundError):
    """No notification with that id is visible to the caller."""

    status = 404
    code = "not-found"
    title = "Notification not found"


class NotificationStateError(MailError, ConflictError):
    """The notification is in a state that does not allow the request."""

    status = 409
    code = "conflict"
    title = "Notification state conflict"
