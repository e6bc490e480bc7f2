"""Certificate building blocks for the development PKI (cryptography-based)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from service.text import fold

__all__ = [
    "CertProfile",
    "KeyPair",
    "build_cert",
    "decrypt_key",
    "encrypt_key",
    "new_key",
    "vn_name",
]

# RSA-2048: what Vietnamese government CAs (Ban Cơ yếu Chính phủ) and the USB tokens
# in use issue; verifiable by every reader (pdfsig/NSS, OpenSSL, Acrobat).
PrivateKey = rsa.RSAPrivateKey


@dataclass(frozen=True)
class KeyPair:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey


CN_MAX = 64  # X.520: a common name holds at most 64 characters


def subject_values(cert: asn1_x509.Certificate, attribute: str) -> list[str]:
    """Every value of one attribute of the certificate's subject (``common_name``, ``user_id``):
    asn1crypto gives one value as itself and several as a list."""
    value = cert.subject.native.get(attribute)
    items = value if isinstance(value, list) else [value] if value is not None else []
    return [str(v) for v in items]


def names_holder(cert: asn1_x509.Certificate, name: str) -> bool:
    """Whether a common name of the certificate is ``name``, case and diacritics aside
    (``NGUYEN VAN AN`` is ``Nguyễn Văn An``), cut as a common name is."""
    wanted = fold(name[:CN_MAX])
    return any(fold(cn) == wanted for cn in subject_values(cert, "common_name"))


@dataclass(frozen=True)
class CertProfile:
    """What kind of certificate to issue."""

    ca: bool = False
    path_length: int | None = None
    eku: tuple[x509.ObjectIdentifier, ...] = ()
    ocsp_nocheck: bool = False
    lifetime_days: int = 365 * 3
    email: str | None = None


def new_key() -> PrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def encrypt_key(key: PrivateKey, passphrase: bytes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def decrypt_key(pem: bytes, passphrase: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=passphrase)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("development PKI keys are RSA")
    return key


def vn_name(common_name: str, *, org: str | None = None, extra: dict[str, str] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    oids = {"uid": NameOID.USER_ID, "serial": NameOID.SERIAL_NUMBER, "email": NameOID.EMAIL_ADDRESS}
    for key, value in (extra or {}).items():
        attrs.append(x509.NameAttribute(oids[key], value))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name[:CN_MAX]))
    return x509.Name(attrs)


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def build_cert(
    subject: x509.Name,
    key: PrivateKey,
    issuer: KeyPair | None,
    profile: CertProfile,
    *,
    base_url: str,
    now: datetime,
) -> x509.Certificate:
    """Issue a certificate; ``issuer=None`` makes it self-signed (a root)."""
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(63) | 1 << 62)
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=profile.lifetime_days))
        .add_extension(x509.BasicConstraints(ca=profile.ca, path_length=profile.path_length), critical=True)
        .add_extension(_key_usage(profile.ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    builder = _add_issuer_extensions(builder, issuer, base_url)
    builder = _add_profile_extensions(builder, profile)
    return builder.sign(signer_key, hashes.SHA256())


def _add_issuer_extensions(
    builder: x509.CertificateBuilder, issuer: KeyPair | None, base_url: str
) -> x509.CertificateBuilder:
    if issuer is None:
        return builder
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
    issuer_is_root = issuer.cert.issuer == issuer.cert.subject
    crl_url = f"{base_url}/{'root.crl' if issuer_is_root else 'ca.crl'}"
    dp = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
    builder = builder.add_extension(aki, critical=False).add_extension(
        x509.CRLDistributionPoints([dp]), critical=False
    )
    if issuer_is_root:
        return builder
    aia = x509.AuthorityInformationAccess(
        [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{base_url}/ocsp"))]
    )
    return builder.add_extension(aia, critical=False)


def _add_profile_extensions(builder: x509.CertificateBuilder, profile: CertProfile) -> x509.CertificateBuilder:
    if profile.eku:
        # RFC 3161 §2.3: a TSA certificate's EKU must be critical; OCSP's may be.
        critical = ExtendedKeyUsageOID.TIME_STAMPING in profile.eku
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(profile.eku)), critical=critical)
    if profile.ocsp_nocheck:
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    if profile.email:
        san = x509.SubjectAlternativeName([x509.RFC822Name(profile.email)])
        builder = builder.add_extension(san, critical=False)
    return builder
