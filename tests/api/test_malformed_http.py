"""Requests that are not valid HTTP, sent to `docexchange serve` over a socket: uvicorn refuses
them before the application, and the answer is still a problem document."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from tests.api.test_workers import _env, _free_port

MALFORMED = {
    "a control byte in a header": b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\n\r\n",
    "a 70 KB request line": b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "TLS spoken to the plain port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
}


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        answer = b""
        while chunk := s.recv(65536):  # the server closes the connection after its answer
            answer += chunk
    return answer


@pytest.fixture
def served(settings):
    if not settings.effective_database_url.startswith("sqlite"):
        pytest.skip("about the HTTP layer: one database is enough")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
                            env=_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(15)


def test_malformed_http_is_refused_with_a_problem_document_and_the_server_serves_on(served) -> None:
    port, proc = served
    for case, raw in MALFORMED.items():
        head, _, body = _exchange(port, raw).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        assert lines[0] == "HTTP/1.1 400 Bad Request", case
        assert headers["content-type"] == "application/problem+json", case
        problem = json.loads(body)
        assert problem["status"] == 400, case
        assert "not valid HTTP" in problem["detail"], case
        assert problem["request_id"] == headers["x-request-id"], case
    healthy = _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert healthy.startswith(b"HTTP/1.1 200 ")
    proc.terminate()
    log = proc.communicate(timeout=15)[1].decode()
    assert log.count('"message": "malformed request refused"') == len(MALFORMED)
