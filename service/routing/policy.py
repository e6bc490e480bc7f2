"""Who may send to whom: rules over the unit tree, configured per deployment."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from service.errors import InvalidInputError, PermissionDeniedError

__all__ = ["RULES", "RoutingPolicy", "RoutingRefusedError", "UnitRef"]


@dataclass(frozen=True, slots=True)
class UnitRef:
    """The few fields of a unit that routing needs (cheap for 10,000 rows)."""

    id: str
    code: str
    name: str
    path: str
    parent_id: str | None


class RoutingRefusedError(PermissionDeniedError):
    """The policy does not let the sender reach some recipients."""

    code = "routing-refused"
    title = "Routing policy refused the recipients"


Rule = Callable[[UnitRef, UnitRef], bool]

RULES: dict[str, tuple[str, Rule]] = {
    "parent": ("its parent unit", lambda s, r: r.id == s.parent_id),
    "children": ("its child units", lambda s, r: r.parent_id == s.id),
    "siblings": ("units with the same parent", lambda s, r: r.parent_id == s.parent_id and r.id != s.id),
    "descendants": ("any unit below it", lambda s, r: r.path.startswith(s.path) and r.id != s.id),
    "ancestors": ("any unit above it", lambda s, r: s.path.startswith(r.path) and r.id != s.id),
    "any": ("any other unit", lambda s, r: r.id != s.id),
}


@dataclass(frozen=True)
class RoutingPolicy:
    """An ordered set of rule names; a recipient is allowed if any rule allows it."""

    rules: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> RoutingPolicy:
        """From ``"parent,children,siblings,descendants"``. Raises InvalidInputError."""
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in RULES]
        if unknown or not names:
            raise InvalidInputError(f"unknown routing rules {unknown}; known: {', '.join(RULES)}")
        return cls(names)

    def describe(self) -> str:
        return "; ".join(f"{n} ({RULES[n][0]})" for n in self.rules)

    def allows(self, sender: UnitRef, recipient: UnitRef) -> bool:
        return any(RULES[name][1](sender, recipient) for name in self.rules)

    def knows(self, sender: UnitRef, unit: UnitRef) -> bool:
        """Whether ``sender``'s clerks may learn that ``unit`` exists by naming it: a unit of
        its own subtree (what GET /units shows them, ``units.unit_in_scope`` at the unit's
        path) or one this policy lets it send to (a send there would tell them anyway).
        Any other unit must be answered as one that does not exist."""
        return unit.path.startswith(sender.path) or self.allows(sender, unit)

    def knows_all_below(self, sender: UnitRef, anchor: UnitRef) -> bool:
        """Whether ``sender`` may know of every unit below ``anchor``, whatever the tree holds.
        If not, a selector anchored there would tell by its answer (sent, or refused for
        units out of reach) whether units of a given level lie below ``anchor``."""
        return anchor.path.startswith(sender.path) or "any" in self.rules

    def check(self, sender: UnitRef, recipients: Iterable[UnitRef], *,
              known_by: RoutingPolicy | None = None) -> None:
        """Raises RoutingRefusedError naming the rules and the refused units, those that
        ``known_by`` (by default this policy) lets the sender know of by code and name."""
        refused = [r for r in recipients if not self.allows(sender, r)]
        if not refused:
            return
        named = [r for r in refused if (known_by or self).knows(sender, r)]
        shown = ", ".join(f"{r.code} ({r.name})" for r in named[:10])
        if len(named) > 10:
            shown += f" and {len(named) - 10} more"
        if len(named) < len(refused):  # reached through a selector: neither their codes nor how many
            hidden = "units under a selector that lie outside your part of the tree (narrow the selector)"
            shown = f"{shown}; {hidden}" if shown else hidden
        raise RoutingRefusedError(
            f"the routing policy lets {sender.code} send only to: {self.describe()}; not allowed: {shown}",
            rules=list(self.rules),
            refused=[r.code for r in named[:100]],
        )


FORWARD_POLICY = RoutingPolicy(("descendants",))
