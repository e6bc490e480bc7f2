"""Key providers: one small interface that hands out a ready pyHanko ``Signer``.

Loading a key (PKCS#8 decryption, PKCS#11 login) costs more than a signature,
so every provider loads once and keeps the signer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from asn1crypto import x509 as asn1_x509
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.sign import signers
from pyhanko.sign.general import SigningError as PyhankoSigningError
from pyhanko.sign.general import load_cert_from_pemder

from service.signing.errors import CertificateRevokedError, KeyProviderError

__all__ = ["FileKeyProvider", "KeyProvider", "Pkcs11KeyProvider"]


class KeyProvider(Protocol):
    """Something that can produce a loaded pyHanko signer."""

    async def signer(self) -> signers.Signer:
        """Return the (cached) signer. Raises KeyProviderError."""
        ...


@dataclass
class FileKeyProvider:
    """An encrypted PKCS#8 PEM key plus its certificate and chain on disk.

    ``is_revoked`` (e.g. ``DevelopmentPki.is_revoked``) is asked about the certificate's
    serial before every signature: a certificate revoked since the key was loaded signs no more.
    """

    key_path: Path
    cert_path: Path
    passphrase: bytes = field(repr=False)
    chain_paths: tuple[Path, ...] = ()
    is_revoked: Callable[[int], bool] | None = None
    _signer: signers.SimpleSigner | None = field(default=None, init=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def signer(self) -> signers.Signer:
        """The loaded signer. Raises KeyProviderError (also when its certificate is revoked)."""
        async with self._lock:
            if self._signer is None:
                self._signer = await asyncio.to_thread(self._load)
            if await self._revoked(self._signer):
                # A new certificate may have been issued to these files since: load them again.
                self._signer = await asyncio.to_thread(self._load)
                if await self._revoked(self._signer):
                    raise CertificateRevokedError(
                        f"the signing certificate of {self.cert_path.stem} has been revoked: the administrator must "
                        "issue a new one (docexchange pki issue-person / issue-unit) before this key signs again")
            return self._signer

    async def _revoked(self, signer: signers.SimpleSigner) -> bool:
        cert = signer.signing_cert
        return self.is_revoked is not None and cert is not None and await asyncio.to_thread(
            self.is_revoked, cert.serial_number)

    def _load(self) -> signers.SimpleSigner:
        try:
            loaded: signers.SimpleSigner | None = signers.SimpleSigner.load(
                str(self.key_path),
                str(self.cert_path),
                ca_chain_files=[str(p) for p in self.chain_paths],
                key_passphrase=self.passphrase,
            )
        except (OSError, ValueError, TypeError, PyhankoSigningError) as exc:
            raise KeyProviderError(f"cannot load key {self.key_path.name}: {exc}") from exc
        if loaded is None:
            raise KeyProviderError(f"cannot load key {self.key_path.name} (wrong passphrase?)")
        return loaded


@dataclass
class Pkcs11KeyProvider:
    """A key on a PKCS#11 token (HSM, USB token, SoftHSM2 in tests).

    The key is found by ``key_label`` (and/or ``key_id``); the certificate by
    ``cert_label`` / ``cert_id`` on the token (defaults: the key's label), or
    from ``cert_path`` when the token holds none. The chain must reach the
    CMS (verifiers trust roots only): give ``chain_paths`` or the labels of CA
    certificates stored on the token in ``chain_labels``.
    """

    module_path: str
    token_label: str
    pin: str = field(repr=False)
    key_label: str | None = None
    cert_label: str | None = None
    #: When the token holds no certificate object, pass it (and its chain) here.
    cert_path: Path | None = None
    chain_paths: tuple[Path, ...] = ()
    chain_labels: tuple[str, ...] = ()
    key_id: bytes | None = None
    cert_id: bytes | None = None
    _session: Any = field(default=None, init=False, repr=False)
    _signer: signers.Signer | None = field(default=None, init=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def signer(self) -> signers.Signer:
        async with self._lock:
            if self._signer is None:
                self._signer = await asyncio.to_thread(self._open)
            return self._signer

    def _open(self) -> signers.Signer:
        from pkcs11 import PKCS11Error
        from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session

        if self.key_label is None and self.key_id is None:
            raise KeyProviderError("PKCS#11: give key_label or key_id")
        try:
            self._session = open_pkcs11_session(
                self.module_path, token_criteria=TokenCriteria(label=self.token_label), user_pin=self.pin
            )
            signer = PKCS11Signer(
                self._session,
                key_label=self.key_label,
                key_id=self.key_id,
                cert_label=(self.cert_label or self.key_label) if self.cert_path is None else None,
                cert_id=(self.cert_id or self.key_id) if self.cert_path is None else None,
                signing_cert=_load_cert(self.cert_path) if self.cert_path else None,
                ca_chain=[_load_cert(p) for p in self.chain_paths],
                other_certs_to_pull=self.chain_labels,
            )
            # Load the key handle and certificates now (in this worker thread):
            # a wrong label or PIN must fail here, not in the middle of a signature.
            signer._load_objects()
        except (OSError, PKCS11Error, PyhankoSigningError) as exc:
            self._close_session()
            raise KeyProviderError(f"PKCS#11 token {self.token_label!r}: {type(exc).__name__}: {exc}") from exc
        return signer

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None

    async def aclose(self) -> None:
        """Close the token session (the signer becomes unusable)."""
        async with self._lock:
            await asyncio.to_thread(self._close_session)
            self._signer = None


def _load_cert(path: Path) -> asn1_x509.Certificate:
    cert: asn1_x509.Certificate = load_cert_from_pemder(str(path))
    return cert
