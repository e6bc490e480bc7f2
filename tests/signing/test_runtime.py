"""The runtime's quick path for unsigned files says what the full verifier says."""

from __future__ import annotations

from pathlib import Path

from service.signing import verify_pdf
from service.signing.runtime import RuntimeConfig, SigningRuntime
from tests.conftest import TEST_PASSPHRASE
from tests.factories.pdf import make_pdf

EMPTY_FIELD = b"4 0 obj\n<< /FT /Sig /T (Chu ky) >>\nendobj\n"


async def test_unsigned_files_get_the_full_verifiers_answer(dev_keys: Path, tmp_path: Path) -> None:
    runtime = await SigningRuntime.start(RuntimeConfig(keys_dir=dev_keys, passphrase=TEST_PASSPHRASE.encode(),
                                                       pki_base_url="http://docexchange.test/api/v1/pki"))
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(make_pdf())
    with_empty_field = tmp_path / "field.pdf"
    pdf = make_pdf()
    with_empty_field.write_bytes(pdf[:20] + EMPTY_FIELD + pdf[20:])
    try:
        for path in (plain, with_empty_field):
            quick = (await runtime.verify(path)).to_dict()
            full = (await verify_pdf(path, runtime.trust)).to_dict()
            assert quick["verdict"] == full["verdict"] == "indeterminate"
            assert quick["sha256"] == full["sha256"]
            assert [f["code"] for f in quick["findings"]] == ["NO_SIGNATURE"]
            assert quick["fields_counted"] == full["fields_counted"] == 0
        assert (await runtime.verify(with_empty_field)).sig_fields_counted == 1
    finally:
        runtime.close()
