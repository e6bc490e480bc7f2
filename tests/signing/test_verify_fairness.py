"""Files users send only to have them checked wait their turn: one per user at a time, and
never on the worker kept for the verification that precedes a send.

A file that takes its time is a named pipe here: the worker that opens it waits, for real,
until the test writes the document into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
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
    """A file whose reader waits until the block ends, then reads ``content`` (as often as it
    opens the file: it is read three times, to hash, count and parse it; a pipe cannot be
    parsed, so its report is not a pass)."""
    os.mkfifo(path)
    done, fed = threading.Event(), threading.Event()

    def feed() -> None:
        while not done.is_set():
            with open(path, "wb") as fh:  # returns once a reader has the other end open
                if not done.is_set():
                    with contextlib.suppress(BrokenPipeError):
                        fh.write(content)
                    fed.set()

    try:
        yield path
    finally:
        feeder = asyncio.create_task(asyncio.to_thread(feed))
        await asyncio.to_thread(_wait_for_readers_to_finish, path, done, fed)
        await asyncio.wait_for(feeder, 30)


def _wait_for_readers_to_finish(path: Path, done: threading.Event, fed: threading.Event) -> None:
    # A worker forked just now may take seconds to start; once it has read the file once, the
    # rest of its reads follow within moments.
    fed.wait(30)
    time.sleep(2)
    done.set()
    # Let the feeder's last open return: it waits for a reader.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    time.sleep(0.1)
    os.close(fd)


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
        assert (await asyncio.wait_for(alice, 20)).verdict is not Verdict.PASSED  # a pipe is no PDF file
        assert (await asyncio.wait_for(bob, 20)).verdict is Verdict.PASSED
        # Alice may send again once her report is back.
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
        assert (await asyncio.wait_for(running, 20)).verdict is not Verdict.PASSED  # a pipe is no PDF file
        assert (await asyncio.wait_for(waiting, 20)).verdict is Verdict.PASSED
        assert (await verifier.verify_for("u3", sealed)).verdict is Verdict.PASSED


async def test_one_worker_is_kept_for_sends_even_on_a_single_core() -> None:
    options = VerifierOptions()
    assert options.workers >= 2
    assert options.on_request == options.workers - 1
