"""Digital signatures for docexchange: development PKI, key providers, PAdES
signing (personal signature, organisation seal, attachment seal) and
verification reports. Other packages import only from here."""

from service.signing._x509 import names_holder, subject_values
from service.signing.appearance import FontConfig, make_seal_png, make_signature_png
from service.signing.errors import (
    CertificateRevokedError,
    ExternalSigningError,
    KeyProviderError,
    PkiError,
    SignatureCreationError,
    SigningError,
)
from service.signing.evidence import build_evidence_zip
from service.signing.external import PreparedSignature, complete_external, prepare_external
from service.signing.html import render_html
from service.signing.keys import FileKeyProvider, KeyProvider, Pkcs11KeyProvider
from service.signing.pades import (
    InProcessTimeStamper,
    Placement,
    SignatureLevel,
    SigningOptions,
    SignResult,
    build_timestamper,
)
from service.signing.pki import DEFAULT_PKI_BASE_URL, DevelopmentPki, IssuedCert
from service.signing.report import (
    RULES_VERSION,
    Indication,
    Modification,
    SignatureReport,
    Verdict,
    VerificationReport,
)
from service.signing.service import DocumentSigner
from service.signing.trust import TrustConfig
from service.signing.verify import Verifier, VerifierOptions, verify_pdf

__all__ = [
    "DEFAULT_PKI_BASE_URL",
    "RULES_VERSION",
    "DevelopmentPki",
    "DocumentSigner",
    "ExternalSigningError",
    "FileKeyProvider",
    "FontConfig",
    "InProcessTimeStamper",
    "Indication",
    "IssuedCert",
    "KeyProvider",
    "CertificateRevokedError",
    "KeyProviderError",
    "Modification",
    "Pkcs11KeyProvider",
    "PkiError",
    "Placement",
    "PreparedSignature",
    "SignResult",
    "SignatureCreationError",
    "SignatureLevel",
    "SignatureReport",
    "SigningError",
    "SigningOptions",
    "TrustConfig",
    "Verdict",
    "VerificationReport",
    "Verifier",
    "VerifierOptions",
    "build_evidence_zip",
    "names_holder",
    "subject_values",
    "build_timestamper",
    "complete_external",
    "make_seal_png",
    "make_signature_png",
    "prepare_external",
    "render_html",
    "verify_pdf",
]
