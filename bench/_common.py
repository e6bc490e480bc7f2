"""Shared benchmark plumbing: servers as subprocesses, PDFs, load loop, RSS sampling, reports.

Nothing here imports the service at module level, so the bare server starts without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from fastapi import FastAPI, Request

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024

# The same uvicorn settings for every server: one process, loopback, pinned loop/http.
LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
HTTP = "httptools" if importlib.util.find_spec("httptools") else "h11"


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, str]:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = str(os.cpu_count() or 1)
    return {"nproc": nproc, "cpu": model, "label": f"{nproc} × {model}",
            "python": sys.version.split()[0], "date": dt.date.today().isoformat()}


def file_create_cost(folder: Path, files: int = 300) -> float:
    """CPU seconds this process spends to create one empty file in ``folder`` (then removed).

    Both servers create at least one file per upload; on ext4 the cost of finding a free
    inode depends on the volume's history (recently deleted inodes are skipped one by
    one), from tens of microseconds to a millisecond on the same disk."""
    probe = Path(tempfile.mkdtemp(prefix="create-cost-", dir=folder))
    try:
        started = time.process_time()
        for n in range(files):
            os.close(os.open(probe / str(n), os.O_CREAT | os.O_WRONLY, 0o600))
        return (time.process_time() - started) / files
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git_revision() -> str:
    """The commit the benchmark ran on, with '-dirty' when the work tree had changes."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


class CpuMonitor:
    """CPU seconds used on the machine during a run, by whom: this benchmark (client and its
    servers), PostgreSQL, and other processes (a shared machine makes figures noisy)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval, self.own = interval, os.getpid()
        self.used: dict[str, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = self.wall = 0.0

    def _category(self, proc: psutil.Process) -> str:
        # Servers are children; their uvicorn workers and verification pools, grandchildren.
        if proc.pid == self.own or any(p.pid == self.own for p in proc.parents()):
            return "benchmark"
        name = proc.name()
        return "postgres" if name.startswith("postgres") else f"other:{name}"

    def _tick(self) -> None:
        for proc in psutil.process_iter():
            try:
                t = proc.cpu_times()
                cpu = t.user + t.system
                prev = self._last.get(proc.pid)
                if prev is None:  # first sighting: count all of it if it started during the run
                    prev = 0.0 if proc.create_time() >= self.started - 1 else cpu
                self._last[proc.pid] = cpu
                if cpu > prev:
                    key = self._category(proc)
                    self.used[key] = self.used.get(key, 0.0) + cpu - prev
            except psutil.Error:
                continue

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._tick()

    def __enter__(self) -> CpuMonitor:
        self.started = time.time()
        self._tick()
        self.used.clear()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._tick()
        self.wall = time.time() - self.started

    def other_cores(self) -> float:
        """Cores kept busy by other processes, on average over the run."""
        other = sum(v for k, v in self.used.items() if k.startswith("other:"))
        return other / self.wall if self.wall else 0.0

    def summary(self) -> str:
        other = {k[6:]: v for k, v in self.used.items() if k.startswith("other:")}
        top = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(other.items(), key=lambda kv: -kv[1])[:3])
        cores = sum(other.values()) / self.wall if self.wall else 0.0
        return (f"CPU seconds over {self.wall:.0f} s: benchmark (client + servers) "
                f"{self.used.get('benchmark', 0):.0f}, PostgreSQL {self.used.get('postgres', 0):.0f}, "
                f"other processes {sum(other.values()):.0f} (≈ {cores:.2f} cores busy on average"
                f"{'; top: ' + top if top else ''})")


# --------------------------------------------------------------------------- servers


def serve(app: Any, port: int, workers: int = 1) -> None:
    """Run ``app`` the way every benchmarked server runs (called in the subprocess).

    With several workers ``app`` is an import string of an app factory: each worker
    process builds its own app, as ``docexchange serve --workers N`` does."""
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, loop=LOOP, http=HTTP, workers=workers, factory=workers > 1,
                log_level="warning", access_log=False, lifespan="on")


def bare_app_from_env() -> FastAPI:
    """The baseline app for worker processes (``BENCH_BARE_STORE`` names its directory)."""
    return create_bare_app(Path(os.environ["BENCH_BARE_STORE"]))


def create_bare_app(store: Path) -> FastAPI:
    """The baseline: stream the request body to a file; a JSON 'send' that only parses."""
    store.mkdir(parents=True, exist_ok=True)
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/upload", status_code=201)
    async def upload(request: Request) -> dict[str, Any]:
        name = uuid.uuid4().hex
        size = 0
        with open(store / name, "wb") as f:
            async for chunk in request.stream():
                f.write(chunk)
                size += len(chunk)
        return {"id": name, "size": size}

    @app.post("/send/{doc_id}")
    async def send(doc_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"document_id": doc_id, "created": len(body.get("recipients", [])), "already_sent": 0}

    return app


class Server:
    """A uvicorn subprocess started by ``bench_core.py --serve KIND``; stderr goes to a log file."""

    def __init__(self, kind: str, env: dict[str, str], log: Path, extra: list[str] | None = None) -> None:
        self.kind, self.port, self.log = kind, free_port(), log
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, str(ROOT / "bench" / "bench_core.py"), "--serve", kind, "--port", str(self.port),
               *(extra or [])]
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self._log_file = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=self._log_file, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def cpu(self) -> float:
        """CPU seconds used so far by the server and its child processes (e.g. worker pools)."""
        total = 0.0
        try:
            proc = psutil.Process(self.pid)
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return total
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base, timeout=2.0) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.kind} server exited ({self.proc.returncode}); see {self.log}:\n"
                                       + self.log.read_text(errors="replace")[-3000:])
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.kind} server not ready after {timeout}s; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.proc, self.interval = psutil.Process(pid), interval
        self.peak = self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.proc.memory_info().rss)
                self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(psutil.Error):
            self.peak = max(self.peak, self.proc.memory_info().rss)


# --------------------------------------------------------------------------- PDFs and multipart

MARKER_LEN = 32  # a uuid4 hex per upload: every upload has distinct bytes (no blob de-duplication)


def pdf_layout(pad: int, marker: bytes = b"0" * MARKER_LEN) -> tuple[bytes, bytes]:
    """A valid PDF as (head, tail) around ``pad`` filler bytes inside its content stream.

    ``head`` ends with the marker (inside a PDF comment); xref offsets account for the filler.
    """
    content = b"BT /F1 14 Tf 72 720 Td (docexchange benchmark) Tj ET\n%" + marker
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                              b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
                              b"/Resources << /Font << /F1 5 0 R >> >> >>"], start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    offsets.append(len(out))
    out += b"4 0 obj\n<< /Length %d >>\nstream\n" % (len(content) + pad) + content
    head = bytes(out)
    pos = len(head) + pad
    tail = bytearray(b"\nendstream\nendobj\n")
    offsets.append(pos + len(tail))
    tail += b"5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>\nendobj\n"
    xref = pos + len(tail)
    tail += b"xref\n0 6\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    tail += b"trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return head, bytes(tail)


def pdf_pad_for(size: int) -> int:
    head, tail = pdf_layout(0)
    return max(0, size - len(head) - len(tail))


BOUNDARY = "docexbenchboundary7d1f0c"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def metadata(number: int, issuer: str) -> dict[str, Any]:
    return {"number_notation": f"{number}-KH/{issuer}", "doc_type": "Kế hoạch", "issued_on": "2026-03-02",
            "place": "Hà Nội", "subject": f"Kế hoạch benchmark số {number}", "signer_name": "Nguyễn Văn An",
            "signer_position": "Bí thư", "urgency": "Thường", "secrecy": "", "deadline": "2026-03-30",
            "recipients_text": "Như trên; Lưu VP."}


def _form_head(meta: dict[str, Any]) -> bytes:
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n'
            f"Content-Type: application/json\r\n\r\n").encode() + json.dumps(meta, ensure_ascii=False).encode() + (
        f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="benchmark.pdf"\r\n'
        f"Content-Type: application/pdf\r\n\r\n").encode()


FORM_END = f"\r\n--{BOUNDARY}--\r\n".encode()


class UploadBody:
    """Multipart bodies of one PDF size; each call gives distinct PDF bytes and number."""

    def __init__(self, size: int) -> None:
        self.size = size
        pad = pdf_pad_for(size)
        self._head, tail = pdf_layout(pad)
        self._head = self._head[:-MARKER_LEN]
        self._rest = b"x" * pad + tail + FORM_END

    def __call__(self, number: int, issuer: str) -> bytes:
        marker = uuid.uuid4().hex.encode()
        return b"".join([_form_head(metadata(number, issuer)), self._head, marker, self._rest])


def write_big_pdf(path: Path, size: int) -> None:
    """A valid PDF of ``size`` bytes on disk, written in 1 MiB steps."""
    pad = pdf_pad_for(size)
    head, tail = pdf_layout(pad, uuid.uuid4().hex.encode())
    block = b"x" * MiB
    with open(path, "wb") as f:
        f.write(head)
        left = pad
        while left:
            n = min(left, MiB)
            f.write(block[:n])
            left -= n
        f.write(tail)


def streamed_form(path: Path, number: int, issuer: str) -> tuple[int, Callable[[], AsyncIterator[bytes]]]:
    """(content length, async generator factory) for a multipart upload of a file read from disk."""
    head = _form_head(metadata(number, issuer))
    length = len(head) + path.stat().st_size + len(FORM_END)

    async def gen() -> AsyncIterator[bytes]:
        yield head
        with open(path, "rb") as f:
            while chunk := f.read(MiB):
                yield chunk
        yield FORM_END

    return length, gen


# --------------------------------------------------------------------------- load


@dataclass
class LoadResult:
    ops: int
    seconds: float
    latencies: list[float]
    phase_a: list[float]
    phase_b: list[float]
    errors: list[str] = field(default_factory=list)
    cpu: float = 0.0  # server CPU seconds inside the measuring window(s)

    @classmethod
    def merge(cls, parts: list[LoadResult]) -> LoadResult:
        return cls(sum(p.ops for p in parts), sum(p.seconds for p in parts),
                   [x for p in parts for x in p.latencies], [x for p in parts for x in p.phase_a],
                   [x for p in parts for x in p.phase_b], [e for p in parts for e in p.errors],
                   sum(p.cpu for p in parts))

    @property
    def cpu_per_op(self) -> float:
        return self.cpu / self.ops if self.ops else float("nan")

    @property
    def throughput(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def pct(self, q: float, which: str = "total") -> float:
        data = sorted({"total": self.latencies, "a": self.phase_a, "b": self.phase_b}[which])
        if not data:
            return float("nan")
        return data[min(len(data) - 1, max(0, round(q * len(data) + 0.5) - 1))]


async def run_load(op: Callable[[int], Awaitable[tuple[float, float]]], *, concurrency: int,
                   warmup: float, duration: float, cpu_probe: Callable[[], float] | None = None) -> LoadResult:
    """Closed loop of ``concurrency`` workers; counts ops completed inside the measuring window.

    ``cpu_probe`` (e.g. ``Server.cpu``) is read at the window's start and end.
    """
    counter = iter(range(1, 10**9))
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + duration
    total: list[float] = []
    a_lat: list[float] = []
    b_lat: list[float] = []
    errors: list[str] = []

    async def worker() -> None:
        while time.perf_counter() < window_end:
            t0 = time.perf_counter()
            try:
                a, b = await op(next(counter))
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                if len(errors) > 50:
                    raise RuntimeError("too many errors: " + " | ".join(errors[:3])) from exc
                continue
            t1 = time.perf_counter()
            if window_start <= t1 <= window_end:
                total.append(t1 - t0)
                a_lat.append(a)
                b_lat.append(b)

    cpu: list[float] = []

    async def probe() -> None:
        if cpu_probe is not None:
            await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
            cpu.append(cpu_probe())
            await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
            cpu.append(cpu_probe())

    await asyncio.gather(probe(), *(worker() for _ in range(concurrency)))
    return LoadResult(len(total), duration, total, a_lat, b_lat, errors, cpu[1] - cpu[0] if cpu else 0.0)


# --------------------------------------------------------------------------- reports


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def mb(n: float) -> str:
    return f"{n / MiB:.0f} MB"


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


DOC_PREAMBLE = """# Performance

How docexchange is benchmarked, and the latest measured figures. One `##` section per area;
each gives the exact command, what is measured, and a results table with the date, the
machine (`nproc` × CPU model from `/proc/cpuinfo`) and the ratio to its baseline or target.
A benchmark script rewrites only the part of its own section between its
`<!-- NAME:begin -->` / `<!-- NAME:end -->` markers; notes outside the markers are kept.
"""


def write_section(doc: Path, title: str, name: str, body: str) -> None:
    """Replace the generated part of section ``title`` in ``doc`` (created if missing)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = doc.read_text(encoding="utf-8") if doc.exists() else DOC_PREAMBLE
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    elif f"## {title}" in text:
        text = text.replace(f"## {title}\n", f"## {title}\n\n{block}\n", 1)
    else:
        text = text.rstrip() + f"\n\n## {title}\n\n{block}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - t0)
