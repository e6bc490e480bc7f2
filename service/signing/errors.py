"""Errors raised by the signing package.

ServiceError
└── SigningError            anything the signing package refuses or fails to do
    ├── KeyProviderError    a key or certificate cannot be loaded / token unusable
    │   └── CertificateRevokedError  the signer's certificate was revoked
    ├── PkiError            the development PKI cannot issue, revoke or answer
    ├── SignatureCreationError  pyHanko failed to produce a signature
    ├── ExternalSigningError    a two-step (client-side) signature cannot be completed
    └── VerifierBusyError   a file sent to be checked must wait: the caller's last, or too many
"""

from service.errors import ServiceError

__all__ = [
    "CertificateRevokedError",
    "ExternalSigningError",
    "KeyProviderError",
    "PkiError",
    "SignatureCreationError",
    "SigningError",
    "VerifierBusyError",
]


class SigningError(ServiceError):
    """Root of the signing package's errors: the document cannot be signed as asked."""

    status = 422
    code = "signing-failed"
    title = "The document could not be signed"


class KeyProviderError(SigningError):
    """A private key, certificate or PKCS#11 token could not be used."""

    status = 503
    code = "signing-key-unavailable"
    title = "The signing key is not available"


class CertificateRevokedError(KeyProviderError):
    """The certificate of the key asked to sign has been revoked: it signs no more."""

    status = 409
    code = "signing-certificate-revoked"
    title = "The signing certificate is revoked"


class PkiError(SigningError):
    """The development PKI could not issue, revoke or answer a request."""

    status = 503
    code = "pki-unavailable"
    title = "The certificate authority could not answer"


class SignatureCreationError(SigningError):
    """A signature could not be created (pyHanko or I/O failure)."""

    code = "signature-creation-failed"


class ExternalSigningError(SigningError):
    """A two-step external signature could not be completed."""

    code = "external-signature-rejected"
    title = "The signature from the token was not accepted"


class VerifierBusyError(SigningError):
    """A file sent to be verified is refused for now: the caller's previous file is still
    running, or too many are waiting. ``retry_after`` (seconds) goes to the Retry-After header."""

    status = 429
    code = "verification-busy"
    title = "Verification is busy"
