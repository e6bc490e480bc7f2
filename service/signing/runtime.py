"""What the running service signs and verifies with, built once from the settings.

Development: a PKI in ``keys_dir`` (created on first use) issues a certificate to a
signer or a sealing unit the first time they sign. Production: the operator puts the
real certificates and encrypted keys in the same layout (``personal/<user id>.pem`` and
``.key.pem``, ``org/<unit code>.pem`` and ``.key.pem``) or in a PKCS#11 token (key label
= user id or unit code), and names the trust roots and the TSA.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pyhanko.sign.timestamps import TimeStamper

from service.pdfscan import Scan, scan_file
from service.signing._x509 import names_holder, subject_values
from service.signing.errors import KeyProviderError
from service.signing.keys import FileKeyProvider, KeyProvider, Pkcs11KeyProvider
from service.signing.pades import SignatureLevel, SigningOptions, build_timestamper
from service.signing.pki import DevelopmentPki
from service.signing.report import RULES_VERSION, Verdict, VerificationReport, finding
from service.signing.service import DocumentSigner
from service.signing.trust import TrustConfig
from service.signing.verify import Verifier, VerifierOptions

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["RuntimeConfig", "SigningRuntime"]

# Issues the certificate a key provider needs, on the development PKI.
_Issue = Callable[[DevelopmentPki], object]


@dataclass(frozen=True)
class RuntimeConfig:
    """The settings the runtime needs (a slice of service.settings.Settings)."""

    keys_dir: Path
    passphrase: bytes = field(repr=False)
    pki_base_url: str
    level: SignatureLevel = SignatureLevel.B_T
    dev_pki: bool = True
    trust_roots_file: Path | None = None
    tsa_url: str = ""
    pkcs11_module: str = ""
    pkcs11_token_label: str = ""
    pkcs11_pin: str = field(default="", repr=False)
    verify_timeout_s: float = 60.0
    verify_memory_mb: int = 1536
    verify_requesters_dir: Path | None = None  # VerifierOptions.requesters_dir

    @classmethod
    def from_settings(cls, settings: Settings) -> RuntimeConfig:
        return cls(
            keys_dir=Path(settings.keys_dir), passphrase=settings.key_passphrase.encode(),
            pki_base_url=settings.public_base_url.rstrip("/") + "/api/v1/pki",
            level=SignatureLevel(settings.signing_level), dev_pki=settings.dev_pki,
            trust_roots_file=settings.trust_roots_file, tsa_url=settings.tsa_url,
            pkcs11_module=settings.pkcs11_module, pkcs11_token_label=settings.pkcs11_token_label,
            pkcs11_pin=settings.pkcs11_pin, verify_timeout_s=settings.verify_timeout_s,
            verify_memory_mb=settings.verify_memory_mb,
            verify_requesters_dir=settings.data_dir / "run" / "verify-requesters",
        )


@dataclass
class SigningRuntime:
    """Trust, timestamper, verifier pool and loaded signers, shared by all requests."""

    config: RuntimeConfig
    pki: DevelopmentPki | None
    trust: TrustConfig
    _signers: dict[str, DocumentSigner] = field(default_factory=dict)
    _verifier: Verifier | None = None
    _timestamper: TimeStamper | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    async def start(cls, config: RuntimeConfig) -> SigningRuntime:
        """Open (or, in development, create) the PKI. Raises SigningError subclasses."""
        pki = await asyncio.to_thread(DevelopmentPki.init, config.keys_dir, config.passphrase,
                                      config.pki_base_url) if config.dev_pki else None
        return cls(config, pki, _trust(config, pki))

    @property
    def rules_version(self) -> int:
        """The verdict rules its reports are made under (a stored report of older rules is stale)."""
        return RULES_VERSION

    @property
    def options(self) -> SigningOptions:
        return SigningOptions(level=self.config.level)

    def timestamper(self) -> TimeStamper | None:
        """One TSA client for every signature (pyHanko caches its size probe in it)."""
        if self._timestamper is None:
            self._timestamper = build_timestamper(self.trust, self.pki.timestamp_response if self.pki else None)
        return self._timestamper

    async def verify(self, path: Path, scan: Scan | None = None, *, requester: str | None = None,
                     ) -> VerificationReport:
        """The report of one file. A file with no signature value at all (no literal
        ``/ByteRange``, see ``service.pdfscan``) is reported in-process; anything else goes
        to the bounded pool. ``scan``: the file's scan when its bytes were just seen.
        ``requester``: the user who sent the file only to have it checked, whose files wait
        their turn (``Verifier.verify_for``; raises VerifierBusyError)."""
        if scan is None:
            scan = await asyncio.to_thread(scan_file, path)
        if scan.byte_ranges == 0:
            return _unsigned_report(path, scan)
        if requester is not None:
            return await self.verifier().verify_for(requester, path)
        return await self.verifier().verify(path)

    def verifier(self) -> Verifier:
        """The shared, warm verification pool (worker processes start on first use)."""
        if self._verifier is None:
            self._verifier = Verifier(self.trust, VerifierOptions(
                timeout_s=self.config.verify_timeout_s, memory_mb=self.config.verify_memory_mb,
                requesters_dir=self.config.verify_requesters_dir))
        return self._verifier

    async def for_person(self, user_id: str, full_name: str, email: str) -> DocumentSigner:
        """The signer of a person's personal certificate. Raises KeyProviderError."""
        return await self._signer("personal", user_id, lambda pki: pki.issue_personal_cert(user_id, full_name, email))

    async def for_unit(self, unit_code: str, unit_name: str) -> DocumentSigner:
        """The signer of a unit's organisation certificate (its seal), which must name the unit
        as it is now. Keys are kept under the unit's code; a code handed on to another unit, or
        a unit renamed, finds a certificate naming someone else. The development PKI then
        issues a new one; elsewhere it is refused. Raises KeyProviderError."""
        def issue(pki: DevelopmentPki) -> object:
            return pki.issue_organisation_cert(unit_code, unit_name)

        signer = await self._signer("org", unit_code, issue)
        cert = await signer.certificate()
        if names_holder(cert, unit_name):
            return signer
        holder = (subject_values(cert, "common_name") or ["no one"])[0]
        if self.pki is None:
            raise KeyProviderError(
                f"the seal certificate kept for {unit_code} names {holder!r}, not {unit_name!r}: a seal must name "
                f"its unit. Install this unit's own certificate (on the token: its key under the label {unit_code}) "
                "before sealing")
        async with self._lock:
            if self._signers.get(f"org/{unit_code}") is signer:  # not done meanwhile by a request beside this one
                await asyncio.to_thread(issue, self.pki)
                del self._signers[f"org/{unit_code}"]
        return await self._signer("org", unit_code, issue)

    async def _signer(self, kind: str, ident: str, issue: _Issue) -> DocumentSigner:
        async with self._lock:
            key = f"{kind}/{ident}"
            if key not in self._signers:
                provider = await self._provider(kind, ident, issue)
                self._signers[key] = DocumentSigner(provider, timestamper=self.timestamper(), trust=self.trust)
            return self._signers[key]

    async def _provider(self, kind: str, ident: str, issue: _Issue) -> KeyProvider:
        cfg = self.config
        chain = self.pki.chain_paths if self.pki else _chain_files(cfg.keys_dir)
        if cfg.pkcs11_module:
            # The CMS must carry the issuing chain, or verifiers cannot build a path.
            return Pkcs11KeyProvider(module_path=cfg.pkcs11_module, token_label=cfg.pkcs11_token_label,
                                     pin=cfg.pkcs11_pin, key_label=ident, chain_paths=tuple(chain))
        # Codes contain dots (000.00.01.H99): build names, not suffixes.
        cert, key = cfg.keys_dir / kind / f"{ident}.pem", cfg.keys_dir / kind / f"{ident}.key.pem"
        if not cert.exists() and self.pki is not None:
            await asyncio.to_thread(issue, self.pki)
        # With the development PKI, a certificate revoked meanwhile (`docexchange pki revoke`) signs no more.
        return FileKeyProvider(key_path=key, cert_path=cert, passphrase=cfg.passphrase, chain_paths=tuple(chain),
                               is_revoked=self.pki.is_revoked if self.pki else None)

    def close(self) -> None:
        if self._verifier is not None:
            self._verifier.close()


def _unsigned_report(path: Path, scan: Scan) -> VerificationReport:
    return VerificationReport(
        file=path.name, sha256=scan.sha256, verdict=Verdict.INDETERMINATE, signatures=[], fields_counted=0,
        sig_fields_counted=scan.sig_fields, fields_enumerated=0, findings=[finding("NO_SIGNATURE")],
        checked_at=datetime.now(UTC).isoformat(),
    )


def _chain_files(keys_dir: Path) -> tuple[Path, ...]:
    # Production: the issuing chain the operator placed beside the keys, if any.
    return tuple(p for p in (keys_dir / "chain.pem",) if p.exists())


def _trust(config: RuntimeConfig, pki: DevelopmentPki | None) -> TrustConfig:
    if config.trust_roots_file is not None:
        return TrustConfig.from_files(config.trust_roots_file, tsa_url=config.tsa_url or None)
    if pki is not None:
        return pki.trust_config()
    raise ValueError("no trust roots: set DOCEX_TRUST_ROOTS_FILE, or enable the development PKI")
