"""Loading and rendering the editable templates (no dependency: string.Template)."""

from __future__ import annotations

import asyncio
import html
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .errors import MailConfigError

__all__ = ["Rendered", "TemplateSet"]

_DEFAULT_DIR = Path(__file__).resolve().parent / "templates"
KINDS = ("arrival", "returned", "recall", "overdue_reminder", "overdue_parent", "mail_failed")


class _Blank(dict[str, str]):
    """Unknown or absent fields render empty instead of failing the send."""

    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class _Kind:
    subject: string.Template
    text: string.Template
    html: string.Template


class TemplateSet:
    """All kinds' templates, read once (in a thread) and kept in memory."""

    def __init__(self, kinds: dict[str, _Kind]) -> None:
        self._kinds = kinds

    @classmethod
    async def load(cls, override_dir: Path | None = None) -> TemplateSet:
        """Raises MailConfigError if a template is missing or malformed."""
        return await asyncio.to_thread(cls._load_sync, override_dir)

    @classmethod
    def _load_sync(cls, override_dir: Path | None) -> TemplateSet:
        return cls({kind: _read_kind(kind, override_dir) for kind in KINDS})

    def render(self, kind: str, fields: dict[str, str]) -> Rendered:
        """Fill ``kind``'s templates; HTML gets escaped values. NFC throughout."""
        templates = self._kinds.get(kind) or self._kinds["arrival"]
        plain = _Blank({k: _nfc(v) for k, v in fields.items()})
        escaped = _Blank({k: html.escape(v) for k, v in plain.items()})
        return Rendered(
            subject=" ".join(templates.subject.substitute(plain).split()),
            text=_nfc(templates.text.substitute(plain)),
            html=_nfc(templates.html.substitute(escaped)),
        )


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _read_kind(kind: str, override_dir: Path | None) -> _Kind:
    text = _read(f"{kind}.txt", override_dir)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise MailConfigError(f"template {kind}.txt must start with a 'Subject:' line")
    return _Kind(
        subject=string.Template(first.removeprefix("Subject:").strip()),
        text=string.Template(body.lstrip("\n")),
        html=string.Template(_read(f"{kind}.html", override_dir)),
    )


def _read(name: str, override_dir: Path | None) -> str:
    for folder in (override_dir, _DEFAULT_DIR):
        if folder is not None and (folder / name).is_file():
            return (folder / name).read_text(encoding="utf-8")
    raise MailConfigError(f"mail template {name} not found")
