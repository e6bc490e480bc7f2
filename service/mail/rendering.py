"""Loading and rendering the editable templates (no dependency: string.Template)."""

from __future__ import annotations

import asyncio
import html
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .errors import MailConfigError

__all__ = ["Rendered", "TemplateSet"]

_DEFAULT_DIR = Path(__file__).resolve().parent / "templates"
KINDS = ("arrival", "returned", "recall", "overdue_reminder", "overdue_parent", "mail_failed")


class _Blank(dict[str, str]):
    """Unknown or absent fields render empty instead of failing the send."""

    def __missing__(self, key: str) -> str:
        return ""


class Rendered(NamedTuple):
    subject: str
    text: str
    html: str


class _Fill:
    """A template cut once into literal text and the fields between: filling is one join.

    ``string.Template.substitute`` scans the text with a regex and a callback per field
    every time; the worker fills three templates per event. Same syntax (``$name``,
    ``${name}``, ``$$``); absent fields are empty. A template with an invalid ``$`` keeps
    ``substitute``'s error, raised when filled (the event is deferred with the reason).
    """

    __slots__ = ("_head", "_names", "_pairs", "_template")

    def __init__(self, template: string.Template) -> None:
        self._template = template
        self._head: str | None = None  # None: an invalid placeholder, ``substitute`` reports it
        self._pairs: tuple[tuple[str, str], ...] = ()  # (field, literal text after it)
        self._names: tuple[str, ...] = ()
        cut = _cut(template)
        if cut is not None:
            texts, names = cut
            self._head, self._pairs = texts[0], tuple(zip(names, texts[1:], strict=True))
            self._names = tuple(dict.fromkeys(names))

    @property
    def names(self) -> tuple[str, ...]:
        """The fields the template uses, each once."""
        return self._names

    def fill(self, values: dict[str, str]) -> str:
        """Raises ValueError (as ``substitute``) if the template has an invalid placeholder."""
        if self._head is None:
            return self._template.substitute(_Blank(values))
        get, parts = values.get, [self._head]
        for name, text in self._pairs:
            parts += (get(name, ""), text)
        return "".join(parts)


def _cut(template: string.Template) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    source, texts, names, literal, at = template.template, [], [], [], 0
    for match in template.pattern.finditer(source):
        literal.append(source[at : match.start()])
        at = match.end()
        if match.group("escaped") is not None:
            literal.append(template.delimiter)
            continue
        name = match.group("named") or match.group("braced")
        if name is None:  # an invalid placeholder
            return None
        texts.append("".join(literal))
        names.append(name)
        literal = []
    literal.append(source[at:])
    texts.append("".join(literal))
    return tuple(texts), tuple(names)


@dataclass(frozen=True, slots=True)
class _Kind:
    subject: _Fill
    text: _Fill
    html: _Fill

    @property
    def names(self) -> tuple[str, ...]:
        """The fields any of the three uses, each once."""
        return tuple(dict.fromkeys(self.subject.names + self.text.names + self.html.names))


class TemplateSet:
    """All kinds' templates, read once (in a thread) and kept in memory."""

    def __init__(self, kinds: dict[str, _Kind]) -> None:
        self._kinds = kinds
        self._names = {kind: templates.names for kind, templates in kinds.items()}

    @classmethod
    async def load(cls, override_dir: Path | None = None) -> TemplateSet:
        """Raises MailConfigError if a template is missing or malformed."""
        return await asyncio.to_thread(cls._load_sync, override_dir)

    @classmethod
    def _load_sync(cls, override_dir: Path | None) -> TemplateSet:
        return cls({kind: _read_kind(kind, override_dir) for kind in KINDS})

    def render(self, kind: str, fields: dict[str, str]) -> Rendered:
        """Fill ``kind``'s templates; HTML gets escaped values. NFC throughout."""
        if kind not in self._kinds:
            kind = "arrival"
        templates, normalize = self._kinds[kind], unicodedata.normalize
        # Only the fields these templates use: the others would be normalized for nothing.
        plain = {k: normalize("NFC", fields[k]) for k in self._names[kind] if k in fields}
        escaped = {k: html.escape(plain[k]) for k in templates.html.names if k in plain}
        return Rendered(
            subject=" ".join(templates.subject.fill(plain).split()),
            text=_nfc(templates.text.fill(plain)),
            html=_nfc(templates.html.fill(escaped)),
        )


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _read_kind(kind: str, override_dir: Path | None) -> _Kind:
    text = _read(f"{kind}.txt", override_dir)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise MailConfigError(f"template {kind}.txt must start with a 'Subject:' line")
    return _Kind(
        subject=_Fill(string.Template(first.removeprefix("Subject:").strip())),
        text=_Fill(string.Template(body.lstrip("\n"))),
        html=_Fill(string.Template(_read(f"{kind}.html", override_dir))),
    )


def _read(name: str, override_dir: Path | None) -> str:
    for folder in (override_dir, _DEFAULT_DIR):
        if folder is not None and (folder / name).is_file():
            return (folder / name).read_text(encoding="utf-8")
    raise MailConfigError(f"mail template {name} not found")
