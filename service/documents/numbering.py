"""Document number and notation (số và ký hiệu), Party and State forms."""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.errors import InvalidInputError
from service.text import nfc

__all__ = ["NumberNotation", "parse_number_notation"]

# Party: 35-KH/HU, 08-NQ/TU, 15-HD/BTGTU.  State: 15/QĐ-BNV, công văn 05/BNV-VP.
_PARTY = re.compile(r"^(?P<num>\d{1,6})-(?P<type>[^\W\d_][\w]*)/(?P<issuer>[\w][\w\-]*)$")
_STATE = re.compile(r"^(?P<num>\d{1,6})/(?P<rest>[\w][\w\-]*)$")


@dataclass(frozen=True)
class NumberNotation:
    """A parsed number and notation; ``key`` identifies it for duplicate checks."""

    form: str  # "party" | "state"
    number: str
    doc_type: str
    issuer: str
    text: str

    @property
    def notation(self) -> str:
        return self.text.split("-", 1)[1] if self.form == "party" else self.text.split("/", 1)[1]

    @property
    def key(self) -> str:
        # Leading zeros are typographic: 5-KH/HU and 05-KH/HU are one number.
        return f"{self.form}:{int(self.number)}:{self.doc_type.upper()}:{self.issuer.upper()}"


_PART_MAX = 100  # the notation and the issuer are kept in columns of this length


def parse_number_notation(raw: str) -> NumberNotation:
    """Parse ``35-KH/HU`` or ``15/QĐ-BNV``. Raises InvalidInputError with both forms shown."""
    parsed = _parse(raw)
    if max(len(parsed.notation), len(parsed.issuer)) > _PART_MAX:
        raise InvalidInputError(f"the notation of {raw!r} is too long: its notation and its issuer may have at "
                                f"most {_PART_MAX} characters each", field="number_notation")
    return parsed


def _parse(raw: str) -> NumberNotation:
    text = "".join(nfc(raw).split())
    if (m := _PARTY.match(text)) is not None:
        return NumberNotation("party", m["num"], m["type"], m["issuer"], text)
    if (m := _STATE.match(text)) is not None:
        doc_type, _, issuer = m["rest"].partition("-")
        # Công văn has no type: 05/BNV-VP is issued by BNV, its office VP.
        if doc_type.isupper() and doc_type.isalpha() and issuer and not _is_known_type(doc_type):
            doc_type, issuer = "CV", m["rest"]
        return NumberNotation("state", m["num"], doc_type, issuer or doc_type, text)
    raise InvalidInputError(
        f"number and notation {raw!r} is in neither form: Party '35-KH/HU' or State '15/QĐ-BNV'",
        field="number_notation",
    )


_STATE_TYPES = {"NQ", "QĐ", "CT", "QC", "QYĐ", "TB", "HD", "CTR", "KH", "PA", "ĐA", "DA", "BC", "BB",
                "TTR", "HĐ", "CĐ", "GUQ", "GM", "GGT", "GNP", "PC", "PB", "TC", "TT", "NĐ", "L", "PL"}


def _is_known_type(text: str) -> bool:
    return text.upper() in _STATE_TYPES
