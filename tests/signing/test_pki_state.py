"""The development PKI's state shared by several processes (the server, its workers, the
``docexchange pki`` commands), and the OCSP and TSA answers to requests they must refuse."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from asn1crypto import cms, core, tsp
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from service.signing import DevelopmentPki, FileKeyProvider, IssuedCert, KeyProviderError
from tests.conftest import TEST_PASSPHRASE

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@pytest.fixture
def keys(dev_keys: Path, tmp_path: Path) -> Path:
    """A private copy of the session's development PKI (no RSA key generation per test)."""
    return Path(shutil.copytree(dev_keys, tmp_path / "keys"))


def _open(keys: Path) -> DevelopmentPki:
    return DevelopmentPki.open(keys, TEST_PASSPHRASE.encode())


def _cli(keys: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DOCEX_KEYS_DIR": str(keys), "DOCEX_KEY_PASSPHRASE": TEST_PASSPHRASE,
           "DOCEX_DATA_DIR": str(keys.parent / "data")}
    return subprocess.Popen([sys.executable, "-m", "service.cli", "pki", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def _state(keys: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((keys / "state.json").read_text("utf-8"))
    return data


def _crl(der: bytes) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(der)


def _number(der: bytes) -> int:
    return int(_crl(der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


def _in_parallel(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(i)`` for every i at once (a barrier lines the threads up)."""
    barrier = threading.Barrier(count)

    def run(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def _ocsp_request(issuer: x509.Certificate, serial: int, algorithm: str = "sha1", nonce: bytes | None = None) -> bytes:
    """A DER OCSP request whose CertID is hashed with ``algorithm`` (any, even MD5)."""
    spki_der = issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    spki = asn1_x509.PublicKeyInfo.load(spki_der)
    cert_id = asn1_ocsp.CertId({
        "hash_algorithm": {"algorithm": algorithm},
        "issuer_name_hash": hashlib.new(algorithm, issuer.subject.public_bytes()).digest(),
        "issuer_key_hash": hashlib.new(algorithm, spki["public_key"].contents[1:]).digest(),
        "serial_number": serial,
    })
    tbs: dict[str, Any] = {"request_list": [{"req_cert": cert_id}]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": nonce}]
    der: bytes = asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump()
    return der


def _issuing_ca(keys: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((keys / "issuing-ca.pem").read_bytes())


def _ocsp_status(pki: DevelopmentPki, keys: Path, serial: int) -> ocsp.OCSPCertStatus:
    answer = ocsp.load_der_ocsp_response(pki.answer_ocsp(_ocsp_request(_issuing_ca(keys), serial)))
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return answer.certificate_status


def _person(pki: DevelopmentPki, user_id: str) -> IssuedCert:
    return pki.issue_personal_cert(user_id, "Phạm Thị Dung", f"{user_id}@example.vn")


# -- revocation by the CLI while the server runs -----------------------------------------
def test_cli_revocation_shows_in_the_running_servers_crl_and_ocsp_and_stays(keys: Path) -> None:
    server = _open(keys)
    cert = _person(server, "u-cli-revoked")
    assert not _crl(server.build_crl()).get_revoked_certificate_by_serial_number(cert.serial)
    assert _ocsp_status(server, keys, cert.serial) is ocsp.OCSPCertStatus.GOOD

    _finish(_cli(keys, "revoke", str(cert.serial), "--reason", "key_compromise"))

    listed = _crl(server.build_crl()).get_revoked_certificate_by_serial_number(cert.serial)
    assert listed is not None
    assert listed.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert _ocsp_status(server, keys, cert.serial) is ocsp.OCSPCertStatus.REVOKED
    # The server's CRL build must not write its older copy of the state over the revocation.
    assert _state(keys)["revoked"][str(cert.serial)]["reason"] == "key_compromise"
    assert _ocsp_status(_open(keys), keys, cert.serial) is ocsp.OCSPCertStatus.REVOKED


async def test_a_key_revoked_after_loading_signs_no_more(keys: Path) -> None:
    server = _open(keys)
    cert = _person(server, "u-key-revoked")
    provider = FileKeyProvider(cert.key_path, cert.cert_path, TEST_PASSPHRASE.encode(), cert.chain_paths,
                               is_revoked=server.is_revoked)
    loaded = (await provider.signer()).signing_cert
    assert loaded is not None
    assert loaded.serial_number == cert.serial
    _open(keys).revoke(cert.serial, "key_compromise")  # another process's PKI object
    with pytest.raises(KeyProviderError, match="revoked"):
        await provider.signer()


# -- CRLs ------------------------------------------------------------------------------
def test_concurrent_crl_builds_on_two_pki_objects_get_distinct_increasing_numbers(keys: Path) -> None:
    first, second = _open(keys), _open(keys)
    first.crl_refresh = second.crl_refresh = timedelta(0)  # sign a new CRL on every request
    start = _state(keys)["crl_number"]

    def build_twice(i: int) -> list[int]:
        pki = first if i % 2 else second
        return [_number(pki.build_crl()), _number(pki.build_crl())]

    per_thread = _in_parallel(24, build_twice)
    numbers = [n for pair in per_thread for n in pair]
    assert sorted(numbers) == list(range(start + 1, start + 49))  # 48 CRLs, no number twice
    assert all(a < b for a, b in per_thread)  # later in one thread = a higher number
    assert _state(keys)["crl_number"] == start + 48
    assert _number(first.build_crl()) == start + 49
    assert not [p.name for p in keys.iterdir() if p.name.endswith(".tmp")]


def _reusing(keys: Path) -> DevelopmentPki:
    pki = _open(keys)
    pki.crl_refresh = timedelta(hours=1)  # opted in: a published CRL is served again while fresh
    return pki


def test_a_fresh_crl_is_served_again_without_rewriting_the_state(keys: Path) -> None:
    pki = _reusing(keys)
    published = pki.build_crl()
    before = (keys / "state.json").stat()
    ders = _in_parallel(48, lambda _: _reusing(keys).build_crl() if _ % 2 else pki.build_crl())
    assert set(ders) == {published}
    after = (keys / "state.json").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    root_key = pki.root_cert.public_key()
    assert isinstance(root_key, rsa.RSAPublicKey)
    assert _crl(pki.build_root_crl()).is_signature_valid(root_key)
    assert pki.build_root_crl() == pki.build_root_crl()


def test_revocations_made_while_crls_are_built_each_get_a_newer_crl(keys: Path) -> None:
    pki = _open(keys)
    certs = [_person(pki, f"u-race-{i}") for i in range(6)]
    pki.build_crl()

    def revoke_then_fetch(i: int) -> bytes:
        other = _open(keys)  # as if each revocation came from another process
        other.revoke(certs[i].serial, "affiliation_changed")
        return other.build_crl()

    ders = _in_parallel(len(certs), revoke_then_fetch)
    for cert, der in zip(certs, ders, strict=True):
        assert _crl(der).get_revoked_certificate_by_serial_number(cert.serial) is not None
    by_number = {_number(der): der for der in ders}
    assert len(by_number) == len(set(ders))  # one CRL per number
    final = _crl(pki.build_crl())
    assert {c.serial for c in certs} <= {r.serial_number for r in final}
    assert _number(final.public_bytes(Encoding.DER)) >= max(by_number)


# -- issuing from several processes ---------------------------------------------------------
def test_certificates_issued_by_two_processes_and_two_objects_are_all_recorded(keys: Path) -> None:
    earlier = set(_state(keys)["revoked"])  # the session's PKI may hold revocations of other tests
    procs = [_cli(keys, "issue-person", f"u-proc-{i}", "Đỗ Văn Em", f"em{i}@example.vn") for i in range(3)]
    first, second = _open(keys), _open(keys)
    local = _in_parallel(6, lambda i: _person(first if i % 2 else second, f"u-thread-{i}").serial)
    remote = [int(re.search(r"serial (\d+)", _finish(p)).group(1)) for p in procs]  # type: ignore[union-attr]

    issued = _state(keys)["issued"]
    assert {str(s) for s in local + remote} <= set(issued)
    for serial in remote:  # the server's object knows what the CLI issued, and can revoke it
        first.revoke(serial, "superseded")
    _finish(_cli(keys, "revoke", str(local[0]), "--reason", "superseded"))
    assert {str(s) for s in [*remote, local[0]]} == set(_state(keys)["revoked"]) - earlier


# -- OCSP -------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["md5", "sha3_256"])
def test_ocsp_certid_hashed_with_an_unsupported_algorithm_is_a_malformed_request(
    keys: Path, algorithm: str
) -> None:
    pki = _open(keys)
    serial = _issuing_ca(keys).serial_number
    answer = ocsp.load_der_ocsp_response(pki.answer_ocsp(_ocsp_request(pki.root_cert, serial, algorithm)))
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    answer = ocsp.load_der_ocsp_response(pki.answer_ocsp(_ocsp_request(_issuing_ca(keys), 7, algorithm)))
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_says_unknown_for_a_serial_never_issued_and_echoes_the_nonce(keys: Path) -> None:
    pki = _open(keys)
    issued = _person(pki, "u-ocsp")
    nonce = os.urandom(16)
    never = ocsp.load_der_ocsp_response(pki.answer_ocsp(_ocsp_request(_issuing_ca(keys), 12345, nonce=nonce)))
    assert never.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert never.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert never.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    good = ocsp.load_der_ocsp_response(
        pki.answer_ocsp(_ocsp_request(_issuing_ca(keys), issued.serial, "sha256", nonce=b"n2")))
    assert good.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert good.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n2"
    plain = ocsp.load_der_ocsp_response(pki.answer_ocsp(_ocsp_request(_issuing_ca(keys), issued.serial)))
    assert not list(plain.extensions)


# -- TSA --------------------------------------------------------------------------------
class _TimeStampResp(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    """RFC 3161 TimeStampResp with its token optional (asn1crypto's requires it)."""

    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def _tsa_answer(pki: DevelopmentPki, algorithm: str, imprint: bytes) -> _TimeStampResp:
    req = tsp.TimeStampReq({"version": "v1", "cert_req": True,
                            "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": imprint}})
    answer: _TimeStampResp = _TimeStampResp.load(pki.answer_timestamp(req.dump()))
    return answer


@pytest.mark.parametrize(("algorithm", "imprint", "fail_info"), [
    pytest.param("md5", hashlib.md5(b"document").digest(), "bad_alg", id="md5"),
    pytest.param("sha1", hashlib.sha1(b"document").digest(), "bad_alg", id="sha1"),
    pytest.param("sha256", b"\x01\x02", "bad_data_format", id="2-byte-sha256"),
    pytest.param("sha512", hashlib.sha256(b"document").digest(), "bad_data_format", id="32-byte-sha512"),
])
def test_tsa_rejects_weak_hashes_and_imprints_of_the_wrong_length(
    keys: Path, algorithm: str, imprint: bytes, fail_info: str
) -> None:
    answer = _tsa_answer(_open(keys), algorithm, imprint)
    assert answer["status"]["status"].native == "rejection"
    assert answer["status"]["fail_info"].native == {fail_info}
    assert answer["time_stamp_token"].native is None


def test_tsa_grants_a_sha256_imprint(keys: Path) -> None:
    answer = _tsa_answer(_open(keys), "sha256", hashlib.sha256(b"document").digest())
    assert answer["status"]["status"].native == "granted"
    info = answer["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert info["message_imprint"]["hashed_message"].native == hashlib.sha256(b"document").digest()
