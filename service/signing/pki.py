"""Development PKI: a file-backed mirror of the real government PKI.

Layout of ``keys_dir`` (everything but README.md/.gitignore is git-ignored)::

    root-ca.pem / root-ca.key.pem        stands in for the national government CA
    issuing-ca.pem / issuing-ca.key.pem  issues unit, personal, TSA and OCSP certs
    tsa.pem / tsa.key.pem                RFC 3161 TSA (EKU timeStamping, critical)
    ocsp.pem / ocsp.key.pem              OCSP responder (EKU OCSPSigning, ocsp-nocheck)
    org/<unit_code>.pem / .key.pem       organisation (seal) certificates
    personal/<user_id>.pem / .key.pem    personal certificates
    state.json                           serials issued, revocations, CRL number
    state.lock                           flock'ed around every change of state.json
    ca.crl / root.crl                    the CRLs last published (served while fresh)

Private keys are PKCS#8 encrypted with the caller's passphrase.

Several processes share one keys dir (the server's workers, other instances, the
``docexchange pki`` commands): every change of ``state.json`` is a read-modify-write under
an exclusive ``flock`` of ``state.lock``, and every reader of revocations or issued serials
reads the current file (re-parsed only when it changed), never a copy from start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import tsp
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from service.signing._responders import Responders, RevocationEntry
from service.signing._state import PublishedCrl, StateFile, write_atomic
from service.signing._x509 import CertProfile, KeyPair, build_cert, decrypt_key, encrypt_key, new_key, vn_name
from service.signing.errors import PkiError
from service.signing.trust import TrustConfig

__all__ = ["DEFAULT_PKI_BASE_URL", "DevelopmentPki", "IssuedCert"]

DEFAULT_PKI_BASE_URL = "http://127.0.0.1:8000/api/v1/pki"
_INFRA = {
    "root-ca": "Docexchange Dev Root CA (stand-in national gov CA)",
    "issuing-ca": "Docexchange Dev Issuing CA",
    "tsa": "Docexchange Dev TSA",
    "ocsp": "Docexchange Dev OCSP Responder",
}
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_REASONS = {flag.name: flag for flag in x509.ReasonFlags}
#: How long a published CRL may be served again before a new one (with a new number) is
#: signed; a revocation makes the next request sign a new one at once. Off by default: the
#: service's own verifier takes revocation data issued after a signature, and a CRL served
#: again for an hour left signatures of that hour indeterminate.
CRL_REFRESH = timedelta(0)


@dataclass(frozen=True)
class IssuedCert:
    """Where an issued certificate and its encrypted key live."""

    serial: int
    subject: str
    cert_path: Path
    key_path: Path
    chain_paths: tuple[Path, ...]


class DevelopmentPki:
    """Root CA, issuing CA, TSA and OCSP responder kept as files under ``keys_dir``."""

    def __init__(self, keys_dir: Path, passphrase: bytes, base_url: str, pairs: dict[str, KeyPair]) -> None:
        self.keys_dir = keys_dir
        self.base_url = base_url.rstrip("/")
        self._passphrase = passphrase
        self._pairs = pairs
        self._store = StateFile(keys_dir)
        self._published = {name: PublishedCrl(keys_dir / name) for name in ("ca.crl", "root.crl")}
        #: Serve a published CRL again for this long (tests set it to zero to sign every time).
        self.crl_refresh = CRL_REFRESH
        self.responders = Responders(
            issuing=pairs["issuing-ca"], root=pairs["root-ca"], tsa=pairs["tsa"], ocsp=pairs["ocsp"]
        )

    # -- construction ---------------------------------------------------------
    @classmethod
    def init(cls, keys_dir: Path, passphrase: bytes, base_url: str = DEFAULT_PKI_BASE_URL) -> DevelopmentPki:
        """Create the CA hierarchy if absent (idempotent), then open it.

        Raises PkiError if existing files cannot be decrypted.
        """
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Under the state lock: two processes starting on an empty dir create one hierarchy.
        with StateFile(keys_dir).locked():
            if not (keys_dir / "root-ca.pem").exists():
                _create_hierarchy(keys_dir, passphrase, base_url.rstrip("/"))
        return cls.open(keys_dir, passphrase)

    @classmethod
    def open(cls, keys_dir: Path, passphrase: bytes) -> DevelopmentPki:
        """Open an existing PKI. Raises PkiError when missing or undecryptable."""
        try:
            state = StateFile(keys_dir).read()
            pairs = {name: _load_pair(keys_dir / name, passphrase) for name in _INFRA}
        except (OSError, ValueError, TypeError, PkiError) as exc:
            raise PkiError(f"cannot open development PKI in {keys_dir}: {exc}") from exc
        return cls(keys_dir, passphrase, state["base_url"], pairs)

    # -- issuing --------------------------------------------------------------
    @property
    def root_cert(self) -> x509.Certificate:
        return self._pairs["root-ca"].cert

    @property
    def chain_paths(self) -> tuple[Path, ...]:
        return (self.keys_dir / "issuing-ca.pem", self.keys_dir / "root-ca.pem")

    def issue_organisation_cert(self, unit_code: str, unit_name: str) -> IssuedCert:
        """Issue the seal certificate of a unit (CN = unit name, serialNumber = unit code)."""
        name = vn_name(_nfc(unit_name), org=_nfc(unit_name), extra={"serial": unit_code})
        return self._issue("org", unit_code, name, CertProfile())

    def issue_personal_cert(self, user_id: str, full_name: str, email: str) -> IssuedCert:
        """Issue a person's signing certificate (CN = full name, UID = user id)."""
        name = vn_name(_nfc(full_name), extra={"uid": user_id, "email": email})
        return self._issue("personal", user_id, name, CertProfile(email=email))

    def _issue(self, kind: str, ident: str, subject: x509.Name, profile: CertProfile) -> IssuedCert:
        if not _SAFE.match(ident):
            raise PkiError(f"identifier {ident!r} is not a safe file name")
        key = new_key()
        cert = build_cert(subject, key, self._pairs["issuing-ca"], profile, base_url=self.base_url, now=_now())
        base = self.keys_dir / kind / ident
        base.parent.mkdir(mode=0o700, exist_ok=True)
        _write_pair(base, KeyPair(cert, key), self._passphrase)
        self._record(cert, kind, base)
        return self.issued(cert.serial_number)

    def issued(self, serial: int) -> IssuedCert:
        """Look up a certificate issued earlier. Raises PkiError when unknown."""
        entry = self._store.read()["issued"].get(str(serial))
        if entry is None:
            raise PkiError(f"serial {serial} was not issued by this PKI")
        base = self.keys_dir / entry["path"]
        return IssuedCert(serial, entry["subject"], _cert_file(base), _key_file(base), self.chain_paths)

    # -- revocation -----------------------------------------------------------
    def revoke(self, serial: int, reason: str = "unspecified", at: datetime | None = None) -> None:
        """Record a revocation (UTC). Raises PkiError for unknown serial or reason."""
        if reason not in _REASONS:
            raise PkiError(f"unknown revocation reason {reason!r}; use one of {sorted(_REASONS)}")
        when = (at or _now()).astimezone(UTC)
        with self._store.update() as state:
            if str(serial) not in state["issued"]:
                raise PkiError(f"serial {serial} was not issued by this PKI")
            state["revoked"][str(serial)] = {"reason": reason, "at": when.isoformat()}

    def revocations(self) -> list[RevocationEntry]:
        """Every revocation recorded so far, by any process."""
        return _entries(self._store.read())

    def is_revoked(self, serial: int) -> bool:
        """Whether ``serial`` is revoked now (a revocation dated later does not count yet)."""
        item = self._store.read()["revoked"].get(str(serial))
        return item is not None and datetime.fromisoformat(item["at"]) <= _now()

    def build_crl(self) -> bytes:
        """DER CRL of the issuing CA listing every revocation recorded so far.

        The CRL published last is served again while it is fresh (``crl_refresh``) and lists
        the same revocations; otherwise a new one is signed with the next CRL number (strictly
        increasing across every process on the keys dir). Raises PkiError on I/O failure.
        """
        der = self._fresh_issuing_crl(self._store.read())
        if der is not None:
            return der
        with self._store.locked():
            state = self._store.load()
            der = self._fresh_issuing_crl(state)
            if der is None:
                der = self._new_issuing_crl(state)
        return der

    def build_root_crl(self) -> bytes:
        """DER CRL of the root CA (the issuing CA is never revoked here), served again while fresh."""
        published = self._published["root.crl"]
        der = published.fresh(self.crl_refresh)
        if der is not None:
            return der
        with self._store.locked():
            der = published.fresh(self.crl_refresh)
            if der is None:
                now = _now()
                # Numbered by time, and past the last one even if the clock stepped back.
                der = self.responders.root_crl(now, max(int(now.timestamp()), published.number() + 1))
                published.write(der)
        return der

    def _fresh_issuing_crl(self, state: dict[str, Any]) -> bytes | None:
        published = self._published["ca.crl"]
        if state.get("crl_revoked") != _digest(state["revoked"]) or published.number() != state["crl_number"]:
            return None
        return published.fresh(self.crl_refresh)

    def _new_issuing_crl(self, state: dict[str, Any]) -> bytes:
        # Call with the state lock held. The number is spent (state written) before the CRL is
        # published, so a crash in between never lets two different CRLs share a number.
        state["crl_number"] += 1
        state["crl_revoked"] = _digest(state["revoked"])
        der = self.responders.issuing_crl(_entries(state), state["crl_number"], _now())
        self._store.write(state)
        self._published["ca.crl"].write(der)
        return der

    def answer_ocsp(self, request_der: bytes) -> bytes:
        """Answer a DER OCSP request about a certificate from the issuing CA."""
        state = self._store.read()
        return self.responders.answer_ocsp(request_der, _entries(state), _now(), known=_issued_serials(state))

    def answer_timestamp(self, tsq_der: bytes) -> bytes:
        """Answer a DER RFC 3161 TimeStampReq with a DER TimeStampResp."""
        return self.responders.answer_timestamp(tsq_der, _now())

    def timestamp_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        """Same as :meth:`answer_timestamp` on asn1crypto objects (in-process TSA client)."""
        return self.responders.timestamp_response(req, _now())

    def trust_config(self, *, with_revocation: bool = True) -> TrustConfig:
        """Trust settings for documents signed by this PKI (root + current CRLs)."""
        crls = (self.build_crl(), self.build_root_crl()) if with_revocation else ()
        return TrustConfig(roots_pem=_pem(self.root_cert), crls_der=crls)

    # -- state ----------------------------------------------------------------
    def _record(self, cert: x509.Certificate, kind: str, base: Path) -> None:
        subject = cert.subject.rfc4514_string()
        rel = str(base.relative_to(self.keys_dir))
        with self._store.update() as state:
            state["issued"][str(cert.serial_number)] = {
                "subject": subject, "kind": kind, "path": rel, "issued_at": _now().isoformat(),
            }


def _entries(state: dict[str, Any]) -> list[RevocationEntry]:
    return [
        RevocationEntry(int(serial), datetime.fromisoformat(item["at"]), _REASONS[item["reason"]])
        for serial, item in state["revoked"].items()
    ]


def _issued_serials(state: dict[str, Any]) -> frozenset[int]:
    return frozenset(int(serial) for serial in state["issued"])


def _digest(revoked: dict[str, Any]) -> str:
    """Identifies a set of revocations (the published CRL says which one it lists)."""
    return hashlib.sha256(json.dumps(revoked, sort_keys=True).encode()).hexdigest()


def _create_hierarchy(keys_dir: Path, passphrase: bytes, base_url: str) -> None:
    now = _now()
    root_key = new_key()
    root_profile = CertProfile(ca=True, lifetime_days=3650)
    root = KeyPair(
        build_cert(vn_name(_INFRA["root-ca"]), root_key, None, root_profile, base_url=base_url, now=now), root_key
    )
    ca_key = new_key()
    ca_profile = CertProfile(ca=True, path_length=0, lifetime_days=3000)
    issuing = KeyPair(
        build_cert(vn_name(_INFRA["issuing-ca"]), ca_key, root, ca_profile, base_url=base_url, now=now), ca_key
    )
    pairs = {"root-ca": root, "issuing-ca": issuing}
    profiles = {
        "tsa": CertProfile(eku=(ExtendedKeyUsageOID.TIME_STAMPING,)),
        "ocsp": CertProfile(eku=(ExtendedKeyUsageOID.OCSP_SIGNING,), ocsp_nocheck=True),
    }
    for name, profile in profiles.items():
        key = new_key()
        pairs[name] = KeyPair(build_cert(vn_name(_INFRA[name]), key, issuing, profile, base_url=base_url, now=now), key)
    for name, pair in pairs.items():
        _write_pair(keys_dir / name, pair, passphrase)
    issued: dict[str, dict[str, str]] = {
        str(pair.cert.serial_number): {
            "subject": pair.cert.subject.rfc4514_string(), "kind": "infra", "path": name, "issued_at": now.isoformat(),
        }
        for name, pair in pairs.items()
    }
    state = {"base_url": base_url, "issued": issued, "revoked": {}, "crl_number": 0}
    write_atomic(keys_dir / "state.json", json.dumps(state, indent=1, ensure_ascii=False).encode())


def _cert_file(base: Path) -> Path:
    return base.parent / f"{base.name}.pem"


def _key_file(base: Path) -> Path:
    return base.parent / f"{base.name}.key.pem"


def _write_pair(base: Path, pair: KeyPair, passphrase: bytes) -> None:
    _cert_file(base).write_bytes(_pem(pair.cert))
    # Created readable by this user alone, not opened to others until a chmod after the write.
    fd = os.open(_key_file(base), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file there before keeps its mode otherwise
    with os.fdopen(fd, "wb") as fh:
        fh.write(encrypt_key(pair.key, passphrase))


def _load_pair(base: Path, passphrase: bytes) -> KeyPair:
    cert = x509.load_pem_x509_certificate(_cert_file(base).read_bytes())
    return KeyPair(cert, decrypt_key(_key_file(base).read_bytes(), passphrase))


def _pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _now() -> datetime:
    return datetime.now(UTC)
