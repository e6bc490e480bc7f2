"""Trust configuration: which roots, revocation data and TSA the service relies on.

Nothing here knows about the development PKI: production passes the real
government roots (PEM bundle), the CRLs/OCSP responses it holds and a TSA URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

__all__ = ["TrustConfig"]


@dataclass(frozen=True)
class TrustConfig:
    """Picklable trust settings (sent as-is to verification worker processes)."""

    roots_pem: bytes
    intermediates_pem: bytes = b""
    crls_der: tuple[bytes, ...] = ()
    ocsps_der: tuple[bytes, ...] = ()
    tsa_url: str | None = None
    #: certvalidator revocation mode: "soft-fail" (no data → accept),
    #: "hard-fail" (unreachable → fail) or "require" (data mandatory).
    revocation_mode: str = "soft-fail"
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_files(
        cls,
        roots: Path,
        *,
        intermediates: Path | None = None,
        crls: tuple[Path, ...] = (),
        tsa_url: str | None = None,
        revocation_mode: str = "soft-fail",
    ) -> TrustConfig:
        """Build from a PEM roots bundle, optional intermediates bundle and DER CRL files."""
        return cls(
            roots_pem=roots.read_bytes(),
            intermediates_pem=intermediates.read_bytes() if intermediates else b"",
            crls_der=tuple(path.read_bytes() for path in crls),
            tsa_url=tsa_url,
            revocation_mode=revocation_mode,
        )

    def roots(self) -> list[asn1_x509.Certificate]:
        return _load_bundle(self.roots_pem)

    def intermediates(self) -> list[asn1_x509.Certificate]:
        return _load_bundle(self.intermediates_pem)


def _load_bundle(data: bytes) -> list[asn1_x509.Certificate]:
    if not data.strip():
        return []
    if not pem.detect(data):
        return [asn1_x509.Certificate.load(data)]
    return [asn1_x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)]
