"""Handling status codes of the national standard, and which steps are allowed."""

from __future__ import annotations

from service.errors import ConflictError, InvalidInputError
from service.text import blank

__all__ = ["REGISTERED", "STATUS_NAMES", "ChangedMeanwhileError", "InvalidTransitionError", "check_transition",
           "handling_status"]

STATUS_NAMES = {
    "01": "arrived (đã đến)",
    "02": "returned (trả lại)",
    "03": "registered (đã vào sổ)",
    "04": "assigned (đã phân công)",
    "05": "processing (đang xử lý)",
    "06": "completed (hoàn thành)",
    "13": "recall requested (đề nghị thu hồi)",
    "15": "recall accepted (đồng ý thu hồi)",
    "16": "recall refused (từ chối thu hồi)",
}

# Receiver steps. 13 is the sender's; 16 resumes where handling stood before 13.
_NEXT = {
    "01": {"02", "03"},
    "03": {"04", "05", "06"},
    "04": {"04", "05", "06"},
    "05": {"06"},
    "06": set(),
    "02": set(),
    "13": {"15", "16"},
    "15": set(),
}
RECALLABLE = {"01", "03", "04", "05", "06", "16"}
REGISTERED = {"03", "04", "05", "06"}  # in the recipient's books: it may be forwarded
NEEDS_REASON = {"02", "16"}


class InvalidTransitionError(ConflictError):
    code = "invalid-status-transition"


class ChangedMeanwhileError(ConflictError):
    """Another request changed the delivery's status between this one reading and writing it."""

    code = "delivery-changed-meanwhile"
    title = "Changed by another request"


def handling_status(status: str, before_recall: str | None) -> str:
    """Where handling stands: after a refused recall (16), where it stood before the recall."""
    return (before_recall or "01") if status == "16" else status


def check_transition(current: str, new: str, *, before_recall: str | None, note: str,
                     incoming_number: str | None) -> None:
    """Raises InvalidTransitionError or InvalidInputError (missing reason or number)."""
    allowed = _NEXT.get(handling_status(current, before_recall), set())
    if new not in allowed:
        raise InvalidTransitionError(
            f"a delivery that is {STATUS_NAMES[current]} cannot become {STATUS_NAMES.get(new, new)}; "
            f"allowed next: {', '.join(sorted(allowed)) or 'none'}",
            current=current,
        )
    if new in NEEDS_REASON and blank(note):
        raise InvalidInputError(f"status {new} needs a reason in 'note'", field="note")
    if new == "03" and blank(incoming_number or ""):
        raise InvalidInputError("registering (03) needs the incoming number ('incoming_number')",
                                field="incoming_number")
