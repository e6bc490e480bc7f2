"""Two-step signing: the test plays the signer's PC (key never reaches the server)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.serialization import Encoding

from service.signing import (
    ExternalSigningError,
    Placement,
    SignatureLevel,
    SigningOptions,
    Verdict,
    build_timestamper,
    complete_external,
    prepare_external,
)
from service.signing._x509 import decrypt_key
from tests.signing.conftest import PASSPHRASE, Env

pytestmark = pytest.mark.asyncio
BOX = (340.0, 115.0, 500.0, 210.0)


def _der(path) -> bytes:  # type: ignore[no-untyped-def]
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


async def _prepare(env: Env, name: str, level: SignatureLevel = SignatureLevel.B_T):  # type: ignore[no-untyped-def]
    cert = _der(env.personal.cert_path)
    chain = [_der(p) for p in env.personal.chain_paths]
    prepared = await prepare_external(
        env.sample(f"{name}.pdf"),
        placement=Placement(box=BOX),
        signer_name="Nguyễn Văn An",
        cert_der=cert,
        chain_der=chain,
        options=SigningOptions(level=level),
        dst=env.tmp / f"{name}-signed.pdf",
    )
    return prepared, [cert, *chain]


def _client_sign(env: Env, request: dict[str, str]) -> bytes:
    """What the signer's PC does with its token: RSA PKCS#1 v1.5 over the given bytes."""
    key = decrypt_key(env.personal.key_path.read_bytes(), PASSPHRASE)
    return key.sign(base64.b64decode(request["to_be_signed"]), padding.PKCS1v15(), hashes.SHA256())


async def test_client_signature_completes_and_verifies(env: Env) -> None:
    prepared, chain = await _prepare(env, "ext-ok")
    request = json.loads(json.dumps(prepared.client_request()))  # crosses HTTP as JSON
    state = json.loads(prepared.state)  # storable between requests
    assert base64.b64decode(request["digest"]) == prepared.digest
    assert len(prepared.digest) == 32
    trust = env.trust()
    result = await complete_external(
        json.dumps(state).encode(),
        _client_sign(env, request),
        chain,
        trust=trust,
        timestamper=build_timestamper(trust, env.pki.timestamp_response),
    )
    assert result.output.exists()
    assert result.field_name == "Sig-Personal"
    assert "Nguyễn Văn An" in result.signer_subject
    report = await env.verifier.verify(result.output)
    assert report.verdict is Verdict.PASSED, report.findings
    [sig] = report.signatures
    assert sig.level == "B-T"
    assert sig.proven_time is not None
    assert sig.coverage == "entire_file"


async def test_token_signing_the_precomputed_digest_is_accepted(env: Env) -> None:
    prepared, chain = await _prepare(env, "ext-digest", SignatureLevel.B_B)
    key = decrypt_key(env.personal.key_path.read_bytes(), PASSPHRASE)
    value = key.sign(prepared.digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    result = await complete_external(prepared.state, value, chain, trust=env.trust(), verifier=env.verifier)
    report = await env.verifier.verify(result.output)
    assert report.verdict is Verdict.PASSED
    assert report.signatures[0].level == "B-B"


async def test_wrong_signature_value_is_refused_then_retry_works(env: Env) -> None:
    prepared, chain = await _prepare(env, "ext-bad", SignatureLevel.B_B)
    other = decrypt_key(env.organisation.key_path.read_bytes(), PASSPHRASE)
    wrong = other.sign(prepared.to_be_signed, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(ExternalSigningError, match="does not match the certificate"):
        await complete_external(prepared.state, wrong, chain, trust=env.trust(), verifier=env.verifier)
    assert not (env.tmp / "ext-bad-signed.pdf").exists()
    right = _client_sign(env, prepared.client_request())
    result = await complete_external(prepared.state, right, chain, trust=env.trust(), verifier=env.verifier)
    assert (await env.verifier.verify(result.output)).verdict is Verdict.PASSED
    with pytest.raises(ExternalSigningError, match="already completed"):
        await complete_external(prepared.state, right, chain, trust=env.trust(), verifier=env.verifier)


async def test_other_certificate_at_completion_is_refused(env: Env) -> None:
    prepared, chain = await _prepare(env, "ext-cert", SignatureLevel.B_B)
    other = [_der(env.organisation.cert_path), *chain[1:]]
    with pytest.raises(ExternalSigningError, match="certificate differs"):
        await complete_external(prepared.state, _client_sign(env, prepared.client_request()), other, trust=env.trust())
