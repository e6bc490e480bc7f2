"""Signing with a TSA reached over HTTP: the service's own RFC 3161 endpoint, served by uvicorn."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import uvicorn

from service.api.app import create_app
from service.settings import Settings
from service.signing import Placement, build_timestamper
from service.signing.runtime import RuntimeConfig, SigningRuntime
from tests.conftest import TEST_PASSPHRASE
from tests.factories.pdf import make_pdf


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_signature_timestamped_by_a_tsa_over_http(dev_keys: Path, tmp_path: Path) -> None:
    port = _free_port()
    settings = Settings(data_dir=tmp_path / "data", keys_dir=dev_keys, key_passphrase=TEST_PASSPHRASE,
                        embedded_worker=False, log_level="WARNING")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    runtime = await SigningRuntime.start(RuntimeConfig(keys_dir=dev_keys, passphrase=TEST_PASSPHRASE.encode(),
                                                       pki_base_url="http://docexchange.test/api/v1/pki"))
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        trust = runtime.trust.__class__(**{**runtime.trust.__dict__,
                                           "tsa_url": f"http://127.0.0.1:{port}/api/v1/pki/tsa"})
        timestamper = build_timestamper(trust)
        signer = await runtime.for_person("remote-tsa-signer", "Đỗ Văn Thời", "thoi@example.vn")
        src, out = tmp_path / "in.pdf", tmp_path / "out.pdf"
        src.write_bytes(make_pdf())
        signer._timestamper = timestamper  # this signer's timestamps come over HTTP
        await signer.sign_personal(src, out, placement=Placement(box=(330, 120, 500, 200)),
                                   signer_name="Đỗ Văn Thời")
        report = await runtime.verify(out)
        assert report.verdict.value == "passed", report.to_dict()
        assert report.signatures[0].proven_time is not None, "the timestamp from the HTTP TSA is in the signature"
    finally:
        runtime.close()
        server.should_exit = True
        await serving
