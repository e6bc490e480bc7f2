"""Small helpers shared by the mail tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from service.mail import Worker


async def drain_until(worker: Worker, done: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Run batches (sleeping over backoffs) until ``done()`` or the timeout."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not get there in time")
        if not await worker.run_once():
            await asyncio.sleep(0.05)
