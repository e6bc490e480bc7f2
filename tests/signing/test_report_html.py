"""The printable HTML report: readable verdict, Vietnam time, nothing from the file unescaped."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from service.signing import Placement, Verdict, VerificationReport, render_html
from tests.signing.conftest import Env

pytestmark = pytest.mark.asyncio
BOX = (340.0, 115.0, 500.0, 210.0)


async def sealed_report(env: Env, name: str) -> tuple[Path, VerificationReport]:
    src, personal, sealed = env.sample(f"{name}.pdf"), env.tmp / f"{name}-p.pdf", env.tmp / f"{name}-sealed.pdf"
    await env.signer_for(env.personal).sign_personal(
        src, personal, placement=Placement(box=BOX), signer_name="Nguyễn Văn An"
    )
    await env.signer_for(env.organisation).sign_organisation(personal, sealed, unit_name="Văn phòng Tỉnh ủy")
    report = await env.verifier.verify(sealed)
    assert report.verdict is Verdict.PASSED
    return sealed, report


async def test_passed_report_reads_top_down(env: Env) -> None:
    _, report = await sealed_report(env, "html-ok")
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert page.index("HỢP LỆ") < page.index("Sig-Personal") < page.index("Sig-Organisation")
    assert "Nguyễn Văn An" in page
    assert "Văn phòng Tỉnh ủy" in page
    assert "giờ Việt Nam, UTC+07:00" in page
    assert "B-T" in page
    assert "TOTAL_PASSED" in page
    assert "Toàn bộ tệp" in page
    assert "The entire file" in page
    assert "Chỉ có chữ ký tiếp theo" in page  # the personal signature: only the seal followed


async def test_hostile_strings_are_escaped(env: Env) -> None:
    _, report = await sealed_report(env, "html-hostile")
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    sig = dataclasses.replace(
        report.signatures[0],
        signer_cn=evil,
        field_name=evil,
        changed_fields=[evil],
        claimed_time=evil,
        sub_indication=evil,
    )
    hostile = dataclasses.replace(report, file=evil, signatures=[sig], verdict=Verdict.FAILED)
    page = render_html(hostile)
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "KHÔNG HỢP LỆ" in page
