"""Routing: who may send to whom, and who a request's recipients are."""

from service.routing.policy import FORWARD_POLICY, RULES, RoutingPolicy, RoutingRefusedError, UnitRef
from service.routing.recipients import RecipientSelector, expand_recipients, unit_ref

__all__ = [
    "FORWARD_POLICY",
    "RULES",
    "RecipientSelector",
    "RoutingPolicy",
    "RoutingRefusedError",
    "UnitRef",
    "expand_recipients",
    "unit_ref",
]
