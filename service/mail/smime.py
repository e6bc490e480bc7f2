"""S/MIME signing (multipart/signed, detached) with the gateway's certificate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MailConfigError

if TYPE_CHECKING:
    # S/MIME is optional: cryptography loads when a signer is configured, not with every process.
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["SmimeSigner"]


@dataclass(frozen=True, slots=True)
class SmimeSigner:
    """Signs an already 7-bit MIME entity; loaded once from PEM files."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def from_files(cls, cert_path: Path, key_path: Path, passphrase: str) -> SmimeSigner:
        """Blocking (reads files): call in a thread. Raises MailConfigError."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(
                key_path.read_bytes(), passphrase.encode() if passphrase else None
            )
        except (OSError, ValueError, TypeError) as exc:
            raise MailConfigError(f"cannot load the S/MIME certificate or key: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise MailConfigError("the S/MIME key must be RSA or EC")
        return cls(cert, key)

    def sign(self, inner: bytes) -> bytes:
        """``inner`` (CRLF, 7-bit) → a ``multipart/signed`` entity starting with MIME-Version."""
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.serialization import pkcs7

        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(inner)
            .add_signer(self.certificate, self.key, hashes.SHA256())
            .sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature])
        )
