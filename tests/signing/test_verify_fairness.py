"""Files users send only to have them checked wait their turn: one per user at a time, and
never on the worker kept for the verification that precedes a send.

A file that takes its time is a named pipe here: the worker that opens it waits, for real,
until the test hands it the document.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from service.signing import Verdict, Verifier, VerifierOptions
from service.signing.errors import VerifierBusyError
from tests.signing.conftest import Env
from tests.signing.test_verify import _sealed

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def _slow_file(path: Path, content: bytes) -> AsyncIterator[Path]:
    """A file whose reader waits until the block ends. Until then ``path`` is a named pipe,
    and a worker that opens it waits for a writer; then it becomes a regular file holding
    ``content`` (the later opens read that, however many and however late), and a worker
    still waiting on the pipe is handed ``content`` through it."""
    pipe = path.with_name(path.name + ".pipe")
    os.mkfifo(pipe)
    os.link(pipe, path)
    try:
        yield path
    finally:
        regular = path.with_name(path.name + ".file")
        regular.write_bytes(content)
        os.replace(regular, path)
        await asyncio.to_thread(_hand_over, pipe, content)
        pipe.unlink()


def _hand_over(pipe: Path, content: bytes) -> None:
    """Write ``content`` to the reader waiting on ``pipe``, if one comes within a second (one
    that found the pipe at the path just before it was replaced enters it a moment later);
    a worker forked later than that opens the regular file instead."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader has the pipe open yet
                raise
            time.sleep(0.01)
            continue
        os.set_blocking(fd, True)
        with open(fd, "wb") as fh, contextlib.suppress(BrokenPipeError):
            fh.write(content)
        return


async def test_a_send_is_verified_while_users_files_wait(env: Env, tmp_path: Path) -> None:
    sealed = await _sealed(env, "fair")
    options = VerifierOptions(workers=2, timeout_s=30)
    async with Verifier(env.trust(), options) as verifier:
        async with _slow_file(tmp_path / "slow.pdf", sealed.read_bytes()) as slow:
            alice = asyncio.create_task(verifier.verify_for("alice", slow))
            await asyncio.sleep(0.2)
            with pytest.raises(VerifierBusyError) as second:
                await verifier.verify_for("alice", sealed)
            assert second.value.status == 429
            assert "still being verified" in second.value.detail
            assert second.value.extra["retry_after"] >= 1
            bob = asyncio.create_task(verifier.verify_for("bob", sealed))

            # The send's verification takes the worker kept for it, while Bob waits his turn.
            send = await asyncio.wait_for(verifier.verify(sealed), 20)
            assert send.verdict is Verdict.PASSED
            assert not bob.done()
            assert not alice.done()
        assert (await asyncio.wait_for(alice, 20)).verdict is Verdict.PASSED, "once handed over, her file is checked"
        assert (await asyncio.wait_for(bob, 20)).verdict is Verdict.PASSED
        # Alice may send again once her report is back.
        assert (await verifier.verify_for("alice", sealed)).verdict is Verdict.PASSED


# Another API process (``serve --workers N``) asking whether it would take each user's file.
_ASK_ELSEWHERE = """
import json, sys
from pathlib import Path
from service.signing import TrustConfig, Verifier, VerifierOptions
from service.signing.errors import VerifierBusyError
verifier = Verifier(TrustConfig(roots_pem=b""), VerifierOptions(workers=2, requesters_dir=Path(sys.argv[1])))
answers = {}
for who in sys.argv[2:]:
    try:
        verifier.check_room(who)
        answers[who] = "taken"
    except VerifierBusyError as refused:
        answers[who] = refused.detail
print(json.dumps(answers))
"""


async def _asked_elsewhere(folder: Path, *who: str) -> dict[str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _ASK_ELSEWHERE, str(folder), *who,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    answers: dict[str, str] = json.loads(out)
    return answers


async def test_a_users_running_file_is_their_one_in_every_api_process(env: Env, tmp_path: Path) -> None:
    sealed = await _sealed(env, "procs")
    folder = tmp_path / "requesters"
    options = VerifierOptions(workers=2, timeout_s=30, requesters_dir=folder)
    async with Verifier(env.trust(), options) as verifier:
        async with _slow_file(tmp_path / "slow.pdf", sealed.read_bytes()) as slow:
            alice = asyncio.create_task(verifier.verify_for("alice", slow))
            await asyncio.sleep(0.2)
            elsewhere = await _asked_elsewhere(folder, "alice", "bob")
            assert "still being verified" in elsewhere["alice"]
            assert elsewhere["bob"] == "taken"
        assert (await asyncio.wait_for(alice, 20)).verdict is Verdict.PASSED
        # Her lock went with her report, though the pool's workers were forked while she held it.
        assert await _asked_elsewhere(folder, "alice") == {"alice": "taken"}
        assert (await verifier.verify_for("alice", sealed)).verdict is Verdict.PASSED


async def test_too_many_waiting_files_are_refused_at_once(env: Env, tmp_path: Path) -> None:
    sealed = await _sealed(env, "queue")
    options = VerifierOptions(workers=2, timeout_s=30, waiting_per_worker=1)  # room: one running, one waiting
    async with Verifier(env.trust(), options) as verifier:
        async with _slow_file(tmp_path / "slow.pdf", sealed.read_bytes()) as slow:
            running = asyncio.create_task(verifier.verify_for("u1", slow))
            await asyncio.sleep(0.2)
            waiting = asyncio.create_task(verifier.verify_for("u2", sealed))
            await asyncio.sleep(0.1)
            with pytest.raises(VerifierBusyError) as refused:
                await verifier.verify_for("u3", sealed)
            assert "other users' files" in refused.value.detail
        assert (await asyncio.wait_for(running, 20)).verdict is Verdict.PASSED
        assert (await asyncio.wait_for(waiting, 20)).verdict is Verdict.PASSED
        assert (await verifier.verify_for("u3", sealed)).verdict is Verdict.PASSED


async def test_one_worker_is_kept_for_sends_even_on_a_single_core() -> None:
    options = VerifierOptions()
    assert options.workers >= 2
    assert options.on_request == options.workers - 1
