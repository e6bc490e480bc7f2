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

    def check(self, sender: UnitRef, recipients: Iterable[UnitRef]) -> None:
        """Raises RoutingRefusedError naming the rules and the refused units."""
        refused = [r for r in recipients if not self.allows(sender, r)]
        if refused:
            shown = ", ".join(f"{r.code} ({r.name})" for r in refused[:10])
            more = f" and {len(refused) - 10} more" if len(refused) > 10 else ""
            raise RoutingRefusedError(
                f"the routing policy lets {sender.code} send only to: {self.describe()}; "
                f"not allowed: {shown}{more}",
                rules=list(self.rules),
                refused=[r.code for r in refused[:100]],
            )


FORWARD_POLICY = RoutingPolicy(("descendants",))
