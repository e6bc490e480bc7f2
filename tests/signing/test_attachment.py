"""Attachment seal (Decree 30 App. I): text only, top right of page 1, 10 pt, no clipping."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime
from html import unescape
from pathlib import Path

import pytest

from service.signing import Verdict
from service.signing.appearance import FontConfig
from tests.signing.conftest import Env

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) not installed"),
]
NUMBER = "Số 12-CV/VPTU của Văn phòng Tỉnh ủy — ễ ố ủ ặ ự Đ"


def _words(pdf: Path) -> list[tuple[float, float, float, float, str]]:
    out = subprocess.run(
        ["pdftotext", "-bbox", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    pattern = r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>'
    return [(float(a), float(b), float(c), float(d), unescape(w)) for a, b, c, d, w in re.findall(pattern, out)]


async def test_attachment_text_top_right_readable_and_unclipped(env: Env) -> None:
    out = env.tmp / "attachment-signed.pdf"
    result = await env.signer_for(env.organisation).sign_attachment(
        env.sample("attachment.pdf"), out, number_notation=NUMBER, unit_name="Văn phòng Tỉnh ủy"
    )
    data = out.read_bytes()
    x1, y1, x2, y2 = (
        float(v) for v in re.search(rb"/Rect \[\s*([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)\s*\]", data).groups()
    )  # type: ignore[union-attr]
    assert x2 > 595 - 40
    assert y2 > 842 - 40
    assert x1 > 595 / 2
    # the stamp lines, as text extraction sees them (the seal's words sit above y=60 in top-down coords)
    stamp = [w for w in _words(out) if w[1] < 842 - y1]
    lines = {round(w[1]): [] for w in stamp}  # type: dict[int, list[str]]
    for w in stamp:
        lines[round(w[1])].append(w[4])
    first, second = (" ".join(v) for _, v in sorted(lines.items()))
    assert first == NUMBER  # diacritics intact (ToUnicode), no letter-spacing
    signed_at = datetime.fromisoformat(second)
    assert signed_at.utcoffset() is not None
    assert signed_at.utcoffset().total_seconds() == 7 * 3600
    assert abs(signed_at - result.signed_at).total_seconds() < 1
    # inside the box (nothing clipped), and as wide as Times New Roman 10 pt makes it
    assert all(x1 <= w[0] and w[2] <= x2 + 0.5 for w in stamp)
    assert (x2 - x1) < 10 * 0.6 * len(NUMBER)  # a letter-spaced rendering was about twice as wide
    if FontConfig().regular.name == "Tinos-Regular.ttf":
        fonts = subprocess.run(["pdffonts", str(out)], capture_output=True, text=True, check=True).stdout
        assert re.search(r"\+Tinos\S*\s+CID TrueType\s+Identity-H\s+yes\s+yes\s+yes", fonts), fonts
    report = await env.verifier.verify(out)
    assert report.verdict is Verdict.PASSED
