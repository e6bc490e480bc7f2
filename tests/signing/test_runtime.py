"""The runtime's quick path for unsigned files says what the full verifier says."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from service.signing import verify_pdf
from service.signing.errors import KeyProviderError
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


async def test_a_seal_certificate_must_name_the_unit_that_holds_the_code_now(tmp_path: Path) -> None:
    # Keys are kept under the unit's code. A code handed on to another unit (or a unit
    # renamed) found the old unit's certificate, and sealed in its name.
    code = "000.00.05.H98"
    config = RuntimeConfig(keys_dir=tmp_path / "keys", passphrase=TEST_PASSPHRASE.encode(),
                           pki_base_url="http://docexchange.test/api/v1/pki")
    development = await SigningRuntime.start(config)
    try:
        first = await development.for_unit(code, "Đảng ủy phường Quang Trung")
        assert (await first.certificate()).subject.native["common_name"] == "Đảng ủy phường Quang Trung"
        second = await development.for_unit(code, "Đảng ủy phường Yên Phú")
        assert (await second.certificate()).subject.native["common_name"] == "Đảng ủy phường Yên Phú", \
            "the development PKI issues the new holder its own certificate"
    finally:
        development.close()
    # Without the development PKI nobody issues one: sealing in another unit's name is refused.
    production = await SigningRuntime.start(replace(config, dev_pki=False,
                                                    trust_roots_file=tmp_path / "keys" / "root-ca.pem"))
    try:
        same = await production.for_unit(code, "ĐẢNG ỦY PHƯỜNG YÊN PHÚ")  # case and accents aside, the same name
        assert (await same.certificate()).subject.native["common_name"] == "Đảng ủy phường Yên Phú"
        with pytest.raises(KeyProviderError, match="names 'Đảng ủy phường Yên Phú', not 'Đảng ủy xã Tân Lập'"):
            await production.for_unit(code, "Đảng ủy xã Tân Lập")
    finally:
        production.close()
