"""``docexchange verify`` and ``docexchange pki ...`` (registered by service/cli.py).

verify FILE... [--json] [--trust PEM ...] [--crl DER ...] [--html OUT]
    exit 0 only when every file's verdict is ``passed``, 1 otherwise.
    Trust: the --trust bundles, else DOCEX_TRUST_ROOTS_FILE, else the development
    PKI in DOCEX_KEYS_DIR (its root and current CRLs).
pki init | revoke SERIAL [--reason R] | issue-unit CODE NAME | issue-person USER_ID NAME EMAIL
    the development PKI in DOCEX_KEYS_DIR, keys encrypted with DOCEX_KEY_PASSPHRASE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from sqlmodel import col

from service.signing.html import render_html
from service.signing.pki import DevelopmentPki, IssuedCert
from service.signing.report import Verdict, VerificationReport
from service.signing.trust import TrustConfig
from service.signing.verify import Verifier

__all__ = ["add_commands"]

LoadSettings = Callable[[], Any]


def add_commands(subparsers: Any, load_settings: LoadSettings) -> None:
    """Register ``verify`` and ``pki`` on the service's argparse sub-parsers."""
    p = subparsers.add_parser("verify", help="verify the signatures of PDF files (exit 0 only if all passed)")
    p.add_argument("files", nargs="+", metavar="FILE", type=Path)
    p.add_argument("--json", action="store_true", help="print the reports as a JSON list")
    p.add_argument(
        "--trust",
        action="append",
        type=Path,
        default=[],
        metavar="PEM",
        help="trusted root certificates (PEM bundle); repeatable",
    )
    p.add_argument(
        "--crl", action="append", type=Path, default=[], metavar="DER", help="a CRL to use for revocation; repeatable"
    )
    p.add_argument(
        "--html", type=Path, metavar="OUT", help="write the HTML report (a directory when several files are given)"
    )
    p.set_defaults(func=lambda args: cmd_verify(args, load_settings))

    pki = subparsers.add_parser("pki", help="the development PKI in DOCEX_KEYS_DIR").add_subparsers(
        dest="pki_cmd", required=True
    )
    p = pki.add_parser("init", help="create the root CA, issuing CA, TSA and OCSP certificates, then a seal "
                       "certificate per sealing unit and a personal one per signer (idempotent)")
    p.add_argument("--ca-only", action="store_true", help="only the CA hierarchy, no unit or signer certificates")
    p.set_defaults(func=lambda args: cmd_pki_init(args, load_settings))
    p = pki.add_parser("revoke", help="revoke a certificate issued by the development PKI")
    p.add_argument("serial", type=int)
    p.add_argument("--reason", default="unspecified", help="RFC 5280 reason, e.g. key_compromise, affiliation_changed")
    p.set_defaults(func=lambda args: cmd_pki_revoke(args, load_settings))
    p = pki.add_parser("issue-unit", help="issue a unit's organisation (seal) certificate")
    p.add_argument("code")
    p.add_argument("name")
    p.set_defaults(func=lambda args: cmd_pki_issue(args, load_settings, "unit"))
    p = pki.add_parser("issue-person", help="issue a person's signing certificate")
    p.add_argument("user_id")
    p.add_argument("name")
    p.add_argument("email")
    p.set_defaults(func=lambda args: cmd_pki_issue(args, load_settings, "person"))


# -- verify -----------------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace, load_settings: LoadSettings) -> int:
    trust = _trust(args, load_settings)
    reports = asyncio.run(_verify_all(list(args.files), trust))
    if args.html:
        _write_html(args.html, reports, several=len(reports) > 1)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=1))
    else:
        for path, report in zip(args.files, reports, strict=True):
            print(_one_line(path, report))
    return 0 if all(r.verdict is Verdict.PASSED for r in reports) else 1


async def _verify_all(files: list[Path], trust: TrustConfig) -> list[VerificationReport]:
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"no such file: {', '.join(missing)}")
    async with Verifier(trust) as verifier:
        return await verifier.verify_many(files)


def _trust(args: argparse.Namespace, load_settings: LoadSettings) -> TrustConfig:
    crls = tuple(path.read_bytes() for path in args.crl)
    if args.trust:
        return TrustConfig(roots_pem=b"\n".join(path.read_bytes() for path in args.trust), crls_der=crls)
    settings = load_settings()
    roots_file = getattr(settings, "trust_roots_file", None)
    if roots_file:
        return TrustConfig.from_files(Path(roots_file), crls=tuple(args.crl))
    pki = DevelopmentPki.open(Path(settings.keys_dir), settings.key_passphrase.encode())
    base = pki.trust_config()
    return TrustConfig(roots_pem=base.roots_pem, crls_der=base.crls_der + crls)


def _one_line(path: Path, report: VerificationReport) -> str:
    codes = sorted(
        {f.code for s in report.signatures for f in s.findings if f.code != "OK"} | {f.code for f in report.findings}
    )
    why = f" [{', '.join(codes)}]" if codes and report.verdict is not Verdict.PASSED else ""
    return f"{report.verdict.value.upper():13} {path}  ({len(report.signatures)} signature(s)){why}"


def _write_html(out: Path, reports: list[VerificationReport], *, several: bool) -> None:
    if not several:
        out.write_text(render_html(reports[0]), "utf-8")
        return
    out.mkdir(parents=True, exist_ok=True)
    for index, report in enumerate(reports, start=1):
        (out / f"{index:03d}-{Path(report.file).stem or 'report'}.html").write_text(render_html(report), "utf-8")


# -- pki --------------------------------------------------------------------------------
def _pki(load_settings: LoadSettings, *, create: bool = False) -> DevelopmentPki:
    settings = load_settings()
    keys_dir, passphrase = Path(settings.keys_dir), settings.key_passphrase.encode()
    if create:
        base_url = settings.public_base_url.rstrip("/") + "/api/v1/pki"
        return DevelopmentPki.init(keys_dir, passphrase, base_url)
    return DevelopmentPki.open(keys_dir, passphrase)


def cmd_pki_init(args: argparse.Namespace, load_settings: LoadSettings) -> int:
    pki = _pki(load_settings, create=True)
    fingerprint = pki.root_cert.fingerprint(hashes.SHA256()).hex(":")
    print(f"development PKI ready in {pki.keys_dir}")
    print(f"root CA: {pki.keys_dir / 'root-ca.pem'}  SHA-256 {fingerprint}")
    if not args.ca_only:
        units, people = asyncio.run(_issue_for_registered(pki, load_settings()))
        print(f"issued {units} organisation certificates (units with a seal) and {people} personal "
              "certificates (signers); existing ones were kept")
    return 0


async def _issue_for_registered(pki: DevelopmentPki, settings: Any) -> tuple[int, int]:
    """A seal certificate for each unit that holds a seal, a personal one for each signer."""
    from sqlalchemy import select
    from sqlalchemy.exc import DBAPIError

    from service.storage.db import Database
    from service.units import Unit, User

    url = settings.effective_database_url
    if url.startswith("sqlite") and not Path(url.split("///", 1)[1]).exists():
        return 0, 0  # no database yet: nobody to issue for
    db = Database(url, pool_size=1)
    try:
        async with db.session() as session:
            units = list((await session.execute(select(Unit).where(col(Unit.has_seal)))).scalars())
            people = [u for u in (await session.execute(select(User))).scalars() if "signer" in u.roles]
    except DBAPIError:
        return 0, 0  # the schema is not there yet (run `docexchange db upgrade`)
    finally:
        await db.dispose()
    made_units = [pki.issue_organisation_cert(u.code, u.name) for u in units
                  if not (pki.keys_dir / "org" / f"{u.code}.pem").exists()]
    made_people = [pki.issue_personal_cert(u.id, u.full_name, u.email) for u in people
                   if not (pki.keys_dir / "personal" / f"{u.id}.pem").exists()]
    return len(made_units), len(made_people)


def cmd_pki_revoke(args: argparse.Namespace, load_settings: LoadSettings) -> int:
    pki = _pki(load_settings)
    pki.revoke(args.serial, args.reason)
    print(f"revoked {args.serial} ({args.reason}); the next CRL / OCSP answer says so")
    return 0


def cmd_pki_issue(args: argparse.Namespace, load_settings: LoadSettings, kind: str) -> int:
    pki = _pki(load_settings)
    issued: IssuedCert = (
        pki.issue_organisation_cert(args.code, args.name)
        if kind == "unit"
        else pki.issue_personal_cert(args.user_id, args.name, args.email)
    )
    print(f"serial {issued.serial}\nsubject {issued.subject}\ncertificate {issued.cert_path}\nkey {issued.key_path}")
    return 0
