"""Routing: who may send to whom, and who a request's recipients are."""

from service.routing.policy import FORWARD_POLICY, RULES, RoutingPolicy, RoutingRefusedError, UnitRef
from service.routing.recipients import (
    MAX_RECIPIENTS,
    MAX_SELECTORS,
    InvalidRecipientError,
    RecipientSelector,
    parse_recipients,
    resolve_recipients,
    unit_ref,
)

__all__ = [
    "FORWARD_POLICY",
    "MAX_RECIPIENTS",
    "MAX_SELECTORS",
    "RULES",
    "InvalidRecipientError",
    "RecipientSelector",
    "RoutingPolicy",
    "RoutingRefusedError",
    "UnitRef",
    "parse_recipients",
    "resolve_recipients",
    "unit_ref",
]
