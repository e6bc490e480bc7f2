"""The mail gateway: outbox worker, SMTP relay to Zimbra/Postfix, notifications.

Other packages import only from here.
"""

from .admin import (
    NotificationDetail,
    Scope,
    cancel_notification,
    get_notification,
    list_notifications,
    retry_notification,
)
from .config import ZIMBRA_MAX_MESSAGE_BYTES, ZIMBRA_MAX_RECIPIENTS, MailConfig
from .errors import (
    MailConfigError,
    MailError,
    NotificationNotFound,
    NotificationStateError,
    SmtpError,
    SmtpPermanentError,
    SmtpTemporaryError,
)
from .messages import URGENCY_WORDS, message_id_for
from .models import MailAttempt, MailRecipient
from .overdue import registration_deadline, sweep_overdue
from .rendering import TemplateSet
from .smime import SmimeSigner
from .smtp import Reply, SmtpConnection, SmtpPool
from .worker import Worker, WorkerHandle, start_embedded_worker

__all__ = [
    "URGENCY_WORDS",
    "ZIMBRA_MAX_MESSAGE_BYTES",
    "ZIMBRA_MAX_RECIPIENTS",
    "MailAttempt",
    "MailConfig",
    "MailConfigError",
    "MailError",
    "MailRecipient",
    "NotificationDetail",
    "NotificationNotFound",
    "NotificationStateError",
    "Reply",
    "Scope",
    "SmimeSigner",
    "SmtpConnection",
    "SmtpError",
    "SmtpPermanentError",
    "SmtpPool",
    "SmtpTemporaryError",
    "TemplateSet",
    "Worker",
    "WorkerHandle",
    "cancel_notification",
    "get_notification",
    "list_notifications",
    "message_id_for",
    "registration_deadline",
    "retry_notification",
    "start_embedded_worker",
    "sweep_overdue",
]
