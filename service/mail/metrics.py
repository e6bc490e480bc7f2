"""Prometheus counters of the relay, on the default registry (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["MAIL_DEFERRED", "MAIL_FAILED", "MAIL_SENT"]

# Created once per process on import; prometheus_client refuses duplicates.
MAIL_SENT = Counter("docex_mail_sent", "Notification messages accepted by the relay", ["kind"])
MAIL_DEFERRED = Counter("docex_mail_deferred", "Recipient deliveries deferred (4xx, no connection)", ["kind"])
MAIL_FAILED = Counter("docex_mail_failed", "Recipient deliveries failed permanently (5xx, expired)", ["kind"])
