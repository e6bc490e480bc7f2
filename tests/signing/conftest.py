"""Session-wide real PKI and signers (keys generated in a tmp dir, never mocked)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.signing import (
    DevelopmentPki,
    DocumentSigner,
    FileKeyProvider,
    IssuedCert,
    TrustConfig,
    Verifier,
    build_timestamper,
)
from tests.signing.pdfs import write_sample_pdf

PASSPHRASE = b"test-passphrase"


@dataclass
class Env:
    pki: DevelopmentPki
    personal: IssuedCert
    organisation: IssuedCert
    tmp: Path
    _verifier: Verifier | None = field(default=None, repr=False)

    @property
    def verifier(self) -> Verifier:
        """One warm verifier pool shared by the newer tests (trust frozen at first use)."""
        if self._verifier is None:
            self._verifier = Verifier(self.trust())
        return self._verifier

    def trust(self) -> TrustConfig:
        return self.pki.trust_config()

    def signer_for(self, cert: IssuedCert) -> DocumentSigner:
        trust = self.trust()
        keys = FileKeyProvider(cert.key_path, cert.cert_path, PASSPHRASE, cert.chain_paths)
        return DocumentSigner(keys, timestamper=build_timestamper(trust, self.pki.timestamp_response), trust=trust)

    def sample(self, name: str) -> Path:
        return write_sample_pdf(self.tmp / name)


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("signing")
    pki = DevelopmentPki.init(tmp / "keys", PASSPHRASE)
    personal = pki.issue_personal_cert("u-001", "Nguyễn Văn An", "an@example.vn")
    organisation = pki.issue_organisation_cert("VPTU", "Văn phòng Tỉnh ủy")
    env = Env(pki, personal, organisation, tmp)
    yield env
    if env._verifier is not None:
        env._verifier.close()
