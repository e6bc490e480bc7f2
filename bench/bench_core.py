"""Core exchange benchmarks (issue 2): upload+send throughput, send fan-out, upload memory.

    python bench/bench_core.py [--quick] [--postgres URL | --no-postgres] [--docs PATH]

(a) upload+send ops/s and p50/p99 against a bare FastAPI endpoint (same uvicorn settings,
    same bodies, same concurrency); (b) one POST /send to 1,000 and 10,000 units;
(c) peak RSS of the API process while a 300 MB upload streams in (and of the bare server).
Every server is a real uvicorn subprocess on a free loopback port. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from _common import (  # noqa: E402
    CONTENT_TYPE,
    HTTP,
    LOOP,
    ROOT,
    CpuMonitor,
    LoadResult,
    MiB,
    RssSampler,
    Server,
    UploadBody,
    file_create_cost,
    git_revision,
    machine,
    md_table,
    median,
    ms,
    run_load,
    streamed_form,
    timed,
    write_big_pdf,
    write_section,
)
from wire import WireClient  # noqa: E402

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ROOT_CODE = "BENCH"
SECTION = "Core exchange (issue 2)"
TARGET_RATIO, TARGET_SEND = 0.50, {"sqlite": 1.0, "postgres": 2.0}
TARGET_RSS = 100 * MiB
LEVELS = ("Tỉnh ủy", "Huyện ủy", "Đảng ủy xã", "Chi bộ")


@dataclass
class Plan:
    quick: bool
    sizes: tuple[int, ...] = (200 * 1024, 5 * MiB)
    concurrency: int = 8
    warmup: float = 2.0           # before the first window of each server
    rewarm: float = 1.0           # before each later window
    window: float = 5.0           # measured seconds per window
    rounds: int = 3               # windows per server and size, interleaved across servers
    districts: int = 10           # each district: 40 communes x 24 branches = 1,000 descendants
    reps: int = 3
    big_upload: int = 300 * MiB
    pg_workers: int = 2           # also measure PostgreSQL with this many API processes (1: not)
    client: str = "wire"          # the load generator of (a) and (b): the lean bench/wire.py, or httpx

    @classmethod
    def make(cls, args: argparse.Namespace) -> Plan:
        plan = cls(args.quick)
        if args.quick:
            plan.warmup, plan.window, plan.rounds, plan.districts, plan.reps = 0.5, 2.5, 1, 1, 2
            plan.big_upload = 50 * MiB
        plan.concurrency = args.concurrency or plan.concurrency
        plan.pg_workers = args.pg_workers
        plan.client = args.client
        return plan

    @property
    def fanouts(self) -> list[tuple[int, str]]:
        out = [(1000, f"{ROOT_CODE}.D01")]
        if self.districts >= 10:
            out.append((self.districts * 1000 + self.districts, ROOT_CODE))
        return out


@dataclass
class Results:
    plan: Plan
    load: dict[tuple[str, int], LoadResult] = field(default_factory=dict)     # (server, size)
    fanout: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # (backend, recipients)
    fanout_cpu: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    rss: dict[str, tuple[int, int, float]] = field(default_factory=dict)      # server: idle, peak, seconds
    writeback: dict[str, float] = field(default_factory=dict)  # server: seconds of sync after its windows
    seeding: dict[str, float] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    cpu: str = ""
    noisy: bool = False
    create_cost: float = 0.0  # CPU seconds to create one file in the working directory
    workdir: str = ""


# --------------------------------------------------------------------------- seeding


def tree_specs(districts: int) -> list[Any]:
    from service.units import UnitSpec

    specs = [UnitSpec(ROOT_CODE, "Tỉnh ủy Benchmark", LEVELS[0])]
    for d in range(1, max(districts, 3) + 1):
        dcode = f"{ROOT_CODE}.D{d:02d}"
        specs.append(UnitSpec(dcode, f"Huyện ủy số {d}", LEVELS[1], ROOT_CODE, [f"d{d}@example.vn"], True))
        if d > districts:
            continue  # quick mode: D02, D03 exist (recipients for part a) but are empty
        for c in range(1, 41):
            ccode = f"{dcode}.C{c:02d}"
            specs.append(UnitSpec(ccode, f"Đảng ủy xã {d}-{c}", LEVELS[2], dcode, [f"d{d}c{c}@example.vn"], True))
            specs += [UnitSpec(f"{ccode}.B{b:02d}", f"Chi bộ {d}-{c}-{b}", LEVELS[3], ccode) for b in range(1, 25)]
    return specs


async def seed(url: str, districts: int) -> tuple[str, float, int]:
    """Migrate, import the tree, create a clerk at the root. Returns (token, import seconds, units)."""
    from service import auth, units
    from service.storage.db import Database
    from service.storage.migrate import upgrade_async

    await upgrade_async(url)
    db = Database(url, pool_size=2)
    specs = tree_specs(districts)
    try:
        async with db.session() as s:
            t0 = time.perf_counter()
            await units.import_tree(s, specs)
            await s.commit()
            took = time.perf_counter() - t0
            root = await units.get_unit(s, ROOT_CODE)
            user = await auth.create_user(s, unit=root, username="bench.clerk", full_name="Bench Clerk",
                                          roles=["clerk"])
            token = (await auth.issue_token(s, user, days=2)).token
            await s.commit()
    finally:
        await db.dispose()
    return token, took, len(specs)


async def pg_admin(admin_url: str, statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def pg_reachable(admin_url: str) -> str:
    try:
        await asyncio.wait_for(pg_admin(admin_url, "SELECT 1"), 5)
    except Exception as exc:  # noqa: BLE001 - reported, PostgreSQL part skipped
        return f"{type(exc).__name__}: {exc}"
    return ""


def asyncpg_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


# --------------------------------------------------------------------------- operations


EXTRA_ENV: dict[str, str] = {}  # --env KEY=VALUE, for A/B runs
CLIENTS = {"httpx": "httpx", "wire": "bench/wire.py, a lean HTTP/1.1 client"}


def docex_env(data_dir: Path, db_url: str, max_upload: int) -> dict[str, str]:
    return {"DOCEX_DATA_DIR": str(data_dir), "DOCEX_DATABASE_URL": db_url, "DOCEX_EMBEDDED_WORKER": "false",
            "DOCEX_AUTO_MIGRATE": "false", "DOCEX_KEYS_DIR": str(data_dir / "keys"),
            "DOCEX_MAX_UPLOAD_BYTES": str(max_upload), **EXTRA_ENV}


def settings_note() -> str:
    """The service settings that shape these figures, as the servers ran with them."""
    from service.settings import Settings

    shown = []
    for name in ("log_level", "database_pool_size", "routing_rules", "verify_on_send", "embedded_worker"):
        if name not in Settings.model_fields:
            continue
        env = f"DOCEX_{name.upper()}"
        value = EXTRA_ENV.get(env, "false" if name == "embedded_worker" else Settings.model_fields[name].default)
        shown.append(f"`{env}={str(value).lower() if isinstance(value, bool) else value}`")
    return ", ".join(shown)


class Docex:
    """Client side of the real service: upload, then send to three districts."""

    recipients = [f"{ROOT_CODE}.D01", f"{ROOT_CODE}.D02", f"{ROOT_CODE}.D03"]

    def __init__(self, client: Any, token: str) -> None:
        self.client, self.auth = client, {"Authorization": f"Bearer {token}"}

    async def upload(self, body: bytes | Any, length: int | None = None) -> str:
        headers = {**self.auth, "Content-Type": CONTENT_TYPE}
        if length is not None:
            headers["Content-Length"] = str(length)
        r = await self.client.post("/api/v1/documents", content=body, headers=headers)
        if r.status_code != 201:
            raise RuntimeError(f"upload {r.status_code}: {r.text[:300]}")
        return str(r.json()["id"])

    async def send(self, doc_id: str, recipients: list[Any]) -> dict[str, Any]:
        r = await self.client.post(f"/api/v1/documents/{doc_id}/send", json={"recipients": recipients},
                                   headers=self.auth)
        if r.status_code != 200:
            raise RuntimeError(f"send {r.status_code}: {r.text[:300]}")
        return dict(r.json())


class Bare:
    """Client side of the baseline: the same two requests, the same bodies."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def upload(self, body: bytes | Any, length: int | None = None) -> str:
        headers = {"Content-Type": CONTENT_TYPE}
        if length is not None:
            headers["Content-Length"] = str(length)
        r = await self.client.post("/upload", content=body, headers=headers)
        if r.status_code != 201:
            raise RuntimeError(f"bare upload {r.status_code}: {r.text[:300]}")
        return str(r.json()["id"])

    async def send(self, doc_id: str, recipients: list[Any]) -> dict[str, Any]:
        r = await self.client.post(f"/send/{doc_id}", json={"recipients": recipients})
        if r.status_code != 200:
            raise RuntimeError(f"bare send {r.status_code}: {r.text[:300]}")
        return dict(r.json())


Client = httpx.AsyncClient | WireClient


def client_for(server: Server, concurrency: int, kind: str = "httpx") -> Client:
    if kind == "wire":
        return WireClient(server.base, concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=server.base, timeout=httpx.Timeout(300.0), limits=limits)


@dataclass
class Target:
    """One running server and the client that drives it."""

    name: str  # "bare", "docex-sqlite", "docex-postgres"
    server: Server
    client: Client
    api: Docex | Bare


def upload_send(api: Docex | Bare, make: UploadBody, issuer: str) -> Any:
    async def op(n: int) -> tuple[float, float]:
        body = make(n, issuer)
        t0 = time.perf_counter()
        doc_id = await api.upload(body)
        t1 = time.perf_counter()
        answer = await api.send(doc_id, Docex.recipients)
        if answer.get("created") != 3:
            raise RuntimeError(f"send created {answer.get('created')} deliveries, expected 3")
        return t1 - t0, time.perf_counter() - t1

    return op


async def throughput(targets: list[Target], plan: Plan, res: Results) -> None:
    """Interleaved windows (bare, docex-sqlite, docex-postgres, bare, …) so that load from
    elsewhere on the machine falls on every server alike."""
    last = ""
    for i, size in enumerate(plan.sizes):
        make = UploadBody(size)
        parts: dict[str, list[LoadResult]] = {t.name: [] for t in targets}
        for rnd in range(plan.rounds):
            for t in targets:
                # What the previous window left in the page cache goes to disk now, not
                # during this server's window: the bare server never syncs, the service does.
                with timed() as took:
                    await asyncio.to_thread(os.sync)
                if last:
                    res.writeback[last] = res.writeback.get(last, 0.0) + took[0]
                last = t.name
                issuer = f"T{i}R{rnd}{uuid.uuid4().hex[:6].upper()}"
                parts[t.name].append(await run_load(
                    upload_send(t.api, make, issuer), concurrency=plan.concurrency,
                    warmup=plan.warmup if rnd == 0 else plan.rewarm, duration=plan.window,
                    cpu_probe=t.server.cpu))
        for t in targets:
            r = res.load[(t.name, size)] = LoadResult.merge(parts[t.name])
            print(f"  (a) {t.name:16s} {size // 1024:>5d} KB: {r.throughput:6.1f} ops/s  p50 {ms(r.pct(0.5))}  "
                  f"p99 {ms(r.pct(0.99))}  (upload p50 {ms(r.pct(0.5, 'a'))}, send p50 {ms(r.pct(0.5, 'b'))}; "
                  f"server CPU {ms(r.cpu_per_op)}/op)"
                  f"{f'  ERRORS {len(r.errors)}: {r.errors[0]}' if r.errors else ''}", flush=True)


async def fanout(backend: str, target: Target, plan: Plan, res: Results) -> None:
    small = UploadBody(20 * 1024)
    issuer = f"F{uuid.uuid4().hex[:6].upper()}"
    api, n = target.api, 0
    for expected, under in plan.fanouts:
        times, cpu = [], []
        for _ in range(plan.reps):
            n += 1
            doc_id = await api.upload(small(n, issuer))
            c0, t0 = target.server.cpu(), time.perf_counter()
            answer = await api.send(doc_id, [{"under": under}])
            times.append(time.perf_counter() - t0)
            cpu.append(target.server.cpu() - c0)
            if answer.get("created") != expected:
                raise RuntimeError(f"send under {under} created {answer.get('created')}, expected {expected}")
        res.fanout[(backend, expected)] = times
        res.fanout_cpu[(backend, expected)] = cpu
        print(f"  (b) {backend:8s} send to {expected:>6,d} units: median {median(times):.3f} s  "
              f"(runs: {', '.join(f'{t:.3f}' for t in times)}; server CPU median {median(cpu):.3f} s)",
              flush=True)


async def big_upload(name: str, server: Server, api: Docex | Bare, path: Path, res: Results) -> None:
    # One small upload first so that lazily imported code and pools are warm: "idle" is a served process.
    await api.upload(UploadBody(20 * 1024)(1, "WARM"))
    await asyncio.sleep(0.5)
    idle = server.rss()
    length, gen = streamed_form(path, 2, "BIG")
    with RssSampler(server.pid) as sampler, timed() as took:
        await api.upload(gen(), length)
    res.rss[name] = (idle, sampler.peak, took[0])
    print(f"  (c) {name:16s} {path.stat().st_size // MiB} MB upload: idle {idle / MiB:.0f} MB, "
          f"peak {sampler.peak / MiB:.0f} MB, {took[0]:.1f} s ({path.stat().st_size / MiB / took[0]:.0f} MB/s, "
          f"{sampler.samples} samples)", flush=True)


# --------------------------------------------------------------------------- phases


async def start(name: str, server: Server, plan: Plan, token: str = "") -> Target:
    try:
        await server.ready()
    except BaseException:
        server.stop()
        raise
    client = client_for(server, plan.concurrency, plan.client)
    target = Target(name, server, client, Docex(client, token) if token else Bare(client))
    # One op first, untimed: what a server does once (the service opens its signing runtime
    # and PKI on the first send, about 2 s) is not steady-state throughput.
    await upload_send(target.api, UploadBody(20 * 1024), f"P{uuid.uuid4().hex[:6].upper()}")(1)
    return target


async def stop(targets: list[Target]) -> None:
    for t in targets:
        await t.client.aclose()
        t.server.stop()


async def prepare_backend(backend: str, url: str, tmp: Path, plan: Plan, res: Results) -> tuple[str, Server]:
    token, took, count = await seed(url, plan.districts)
    res.seeding[backend] = took
    print(f"  {backend}: seeded {count:,d} units in {took:.1f} s (service.units.import_tree)", flush=True)
    data = tmp / f"data-{backend}"
    return token, Server("docex", docex_env(data, url, 512 * MiB), tmp / f"docex-{backend}.log")


async def run_memory(tmp: Path, sqlite_url: str, token: str, data: Path, plan: Plan, res: Results) -> None:
    path = tmp / "big.pdf"
    write_big_pdf(path, plan.big_upload)
    shutil.rmtree(data / "blobs", ignore_errors=True)  # disk: part (a) blobs are no longer needed
    print(f"peak RSS during a {plan.big_upload // MiB} MB upload", flush=True)
    for name in ("docex-sqlite", "bare"):
        if name == "bare":
            server = Server("bare", {}, tmp / "bare-rss.log", ["--store", str(tmp / "bare-store")])
        else:
            server = Server("docex", docex_env(data, sqlite_url, 512 * MiB), tmp / "docex-rss.log")
        try:
            await server.ready()
            async with client_for(server, 2) as c:
                api: Docex | Bare = Docex(c, token) if name != "bare" else Bare(c)
                await big_upload(name, server, api, path, res)
        finally:
            server.stop()
    path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- report


def writeback_note(res: Results) -> str:
    shown = [f"{name} {seconds:.1f} s" for name, seconds in res.writeback.items()]
    return "those syncs took, after the windows of " + ", ".join(shown) if shown else "no window ran"


def report(res: Results, command: str, info: dict[str, str], backends: list[str]) -> tuple[str, str]:
    plan, when, box = res.plan, info["date"], info["label"]
    ok = {True: "yes", False: "**NO**"}
    rows_a = []
    pairs = [(backend, f"docex-{backend}", "bare", 1) for backend in backends]
    if plan.pg_workers > 1:
        pairs.append(("postgres", f"docex-postgres-w{plan.pg_workers}", f"bare-w{plan.pg_workers}", plan.pg_workers))
    for size in plan.sizes:
        for backend, docex_name, bare_name, workers in pairs:
            r, bare = res.load.get((docex_name, size)), res.load.get((bare_name, size))
            if r is None or bare is None:
                continue
            ratio = r.throughput / bare.throughput if bare.throughput else float("nan")
            cpu_ratio = bare.cpu_per_op / r.cpu_per_op if r.cpu_per_op else float("nan")
            rows_a.append([when, box, backend, str(workers), f"{size // 1024:,d} KB",
                           f"{r.throughput:.1f}", ms(r.pct(0.5)), ms(r.pct(0.99)), ms(r.cpu_per_op),
                           f"{bare.throughput:.1f}", ms(bare.pct(0.5)), ms(bare.pct(0.99)), ms(bare.cpu_per_op),
                           f"**{ratio:.0%}**", f"{cpu_ratio:.0%}", f"≥ {TARGET_RATIO:.0%}", ok[ratio >= TARGET_RATIO]
                           + (f" ({len(r.errors)} errors)" if r.errors else "")])
    table_a = md_table(["Date", "Machine", "Backend", "API processes", "PDF", "docex ops/s", "p50", "p99", "CPU/op",
                        "bare ops/s", "p50", "p99", "CPU/op", "Ratio vs bare (ops/s)", "Ratio (bare CPU/op ÷ docex)",
                        "Target", "Met"], rows_a)
    rows_f = []
    for size in plan.sizes:
        floor, bare, docex = (res.load.get((name, size)) for name in ("floor", "bare", "docex-sqlite"))
        if floor is None or bare is None or docex is None:
            continue
        rows_f.append([when, box, f"{size // 1024:,d} KB", f"{floor.throughput:.1f}", ms(floor.pct(0.5)),
                       ms(floor.cpu_per_op), f"{bare.throughput:.1f}", f"**{floor.throughput / bare.throughput:.0%}**",
                       f"{docex.throughput:.1f}", f"{docex.throughput / floor.throughput:.0%}",
                       f"{floor.cpu_per_op / docex.cpu_per_op:.0%}" if docex.cpu_per_op else "n/a"])
    table_f = md_table(["Date", "Machine", "PDF", "floor ops/s", "p50", "CPU/op", "bare ops/s", "floor ÷ bare (ops/s)",
                        "docex (SQLite) ops/s", "docex ÷ floor (ops/s)", "floor CPU/op ÷ docex"], rows_f)
    rows_b = []
    for (backend, n), times in res.fanout.items():
        target = TARGET_SEND[backend]
        cpu = res.fanout_cpu.get((backend, n), [])
        rows_b.append([when, box, backend, f"{n:,d}", f"{median(times):.3f} s", f"{min(times):.3f} s",
                       f"{max(times):.3f} s", f"{median(cpu):.3f} s", f"< {target:.0f} s",
                       f"{median(times) / target:.0%}", ok[median(times) < target]])
    table_b = md_table(["Date", "Machine", "Backend", "Recipients", "Median", "Min", "Max", "API CPU (median)",
                        "Target", "Median / target", "Met"], rows_b)
    rows_c = []
    bare_peak = res.rss.get("bare", (0, 0, 0))[1]
    for name, (idle, peak, took) in res.rss.items():
        rows_c.append([when, box, name, f"{plan.big_upload // MiB} MB", f"{idle / MiB:.0f} MB",
                       f"{peak / MiB:.0f} MB", f"+{(peak - idle) / MiB:.0f} MB",
                       f"{plan.big_upload / MiB / took:.0f} MB/s",
                       f"{peak / bare_peak:.2f}×" if bare_peak else "n/a",
                       "< 100 MB" if name != "bare" else "(baseline)",
                       ok[peak < TARGET_RSS] if name != "bare" else ""])
    table_c = md_table(["Date", "Machine", "Server", "Upload", "Idle RSS", "Peak RSS", "Growth", "Upload rate",
                        "Peak vs bare", "Target", "Met"], rows_c)
    tables = (f"(a) upload + send throughput\n\n{table_a}\n\n"
              f"(a′) the floor: keeping the same requests durably, and nothing else\n\n{table_f}\n\n"
              f"(b) one POST /send to a subtree\n\n{table_b}\n\n"
              f"(c) peak RSS while a large upload streams in\n\n{table_c}")
    seeding = ", ".join(f"{b}: {t:.1f} s" for b, t in res.seeding.items())
    quick = "**Quick smoke run: fewer requests, 1,000 units, smaller upload; not the reference figures.**\n\n"
    noisy = ("**Other processes kept the machine busy during this run (see the CPU line): absolute times are "
             "inflated; the CPU/op and API CPU columns are the steadier figures.**\n\n") if res.noisy else ""
    doc = f"""Command (from the repository root, venv active; the PostgreSQL part runs when the server is reachable):

```sh
{command}
```

{quick if plan.quick else ""}{noisy}Machine: {info['nproc']} × {info['cpu']} (`nproc`, `/proc/cpuinfo`);
Python {info['python']}; code at `{info['git']}`. {res.cpu}.

Service settings in effect: {settings_note()}{"; extra: " + ", ".join(f"`{k}={v}`" for k, v in
res.extra_env.items()) if res.extra_env else ""}. Every server is uvicorn (`loop={LOOP}`,
`http={HTTP}`, access log off) on 127.0.0.1, one process unless the table says otherwise; a row with
{plan.pg_workers} API processes compares PostgreSQL served by `{plan.pg_workers}` uvicorn workers (as
`docexchange serve --workers {plan.pg_workers}` runs it) with a bare server run with the same workers;
the load generator ({CLIENTS[plan.client]}, {plan.concurrency} concurrent connections, closed loop) runs on the
same machine; each server served one upload + send, untimed, before its first window.
Data directories (both servers) are under `{res.workdir}`, where creating one file cost
{res.create_cost * 1e6:.0f} µs of CPU at the start of the run (ext4's inode search; it varies with the
volume's history, and each server creates at least one file per upload).
The service runs with `DOCEX_EMBEDDED_WORKER=false` (the mail relay worker would otherwise compete for
the CPU), its default log level (one JSON access line
per request) and a fresh data directory; SQLite is the default file database in `DOCEX_DATA_DIR`,
PostgreSQL is a database `docex_bench_<random>` created for the run and dropped after it.

- **(a)** one op = `POST /api/v1/documents` (multipart: `metadata` + a valid PDF of the given size, distinct
  bytes per op) then `POST /api/v1/documents/{{id}}/send` to 3 units. The baseline (“bare”) is a FastAPI app
  in the same kind of uvicorn process whose `POST /upload` streams the same request body to a file and whose
  `POST /send/{{id}}` only parses the same JSON. The servers run side by side and are measured in
  interleaved windows ({plan.rounds} × {plan.window:g} s per server and size, after {plan.warmup:g} s /
  {plan.rewarm:g} s warm-up), so that other load on the machine falls on all of them alike. Before each window
  the page cache is written to disk (`sync`, not timed), so that no server's window pays for the writes a
  previous window left unsynced ({writeback_note(res)}); ops/s counts ops completed
  inside the windows; p50/p99 are per op (both requests); CPU/op is the server process's CPU time
  (with its child processes) inside the windows divided by the ops, which other load on the machine
  disturbs much less than ops/s (a bare server far below 1 core per its ops/s is limited by the load
  generator, not by itself). Target: docex ≥ 50 % of bare ops/s.
- **(a′)** the “floor” (`bench/floor.py`) runs in the same windows: the same two requests, doing only
  what no correct service can skip, as the service does it — the multipart form parsed as it streams
  in, the PDF hashed, written and `fsync`ed (on a thread), renamed to its content address, and one
  SQLite transaction per request (WAL, `synchronous=NORMAL`): the document and a hash-chained audit
  row; a delivery and an outbox row per recipient and an audit row. No authentication, validation,
  routing, idempotency, verification, logs or metrics. Floor ÷ bare is the most any service that
  keeps these documents safely could reach against this baseline.
- **(b)** a tree of {sum(1 for _ in tree_specs(plan.districts)):,d} units (root → {plan.districts} districts → 40
  communes → 24 branches each; imported with `service.units.import_tree` before the server starts;
  {seeding}). The root's clerk uploads a small PDF, then one `POST /send` with `{{"under": CODE}}` is timed
  at the client: 1,000 units = one district's subtree, 10,010 units = the root's subtree; {plan.reps} runs each,
  a fresh document each; “API CPU” is the API process's CPU time during the request (PostgreSQL's own work
  not included). Targets: < 1 s SQLite, < 2 s PostgreSQL (median).
- **(c)** peak RSS of the server process (psutil, every 50 ms) while a {plan.big_upload // MiB} MB PDF
  (valid header, one big stream, valid xref/trailer) streams from disk through httpx; idle = after one
  small upload. Target: peak < 100 MB.

{tables}
"""
    return tables, doc


# --------------------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> int:
    plan, info = Plan.make(args), machine()
    res = Results(plan)
    tmp = Path(tempfile.mkdtemp(prefix="docex-bench-", dir=args.workdir))
    res.create_cost, res.workdir = file_create_cost(tmp), str(tmp.parent)
    started = time.perf_counter()
    backends = ["sqlite"]
    pg_url = "" if args.no_postgres else asyncpg_url(args.postgres or DEFAULT_PG)
    if pg_url:
        problem = await pg_reachable(pg_url)
        if problem and args.postgres:
            print(f"PostgreSQL at {pg_url} is not reachable: {problem}", file=sys.stderr)
            return 2
        if problem:
            print(f"PostgreSQL part skipped ({pg_url} not reachable: {problem})")
            pg_url = ""
    for item in args.env:
        key, _, value = item.partition("=")
        EXTRA_ENV[key.strip()] = value
    res.extra_env = dict(EXTRA_ENV)
    info["git"] = git_revision()
    print(f"{info['label']}; loop={LOOP} http={HTTP}; {info['git']}; load average "
          f"{os.getloadavg()[0]:.2f}; tmp {tmp} (creating a file: {res.create_cost * 1e6:.0f} µs CPU)", flush=True)
    monitor = CpuMonitor()
    pg_name = ""
    try:
        with monitor:
            print("preparing databases", flush=True)
            sqlite_url = f"sqlite+aiosqlite:///{tmp / 'data-sqlite' / 'docexchange.db'}"
            (tmp / "data-sqlite").mkdir()
            token, sqlite_server = await prepare_backend("sqlite", sqlite_url, tmp, plan, res)
            pending = [("bare", Server("bare", {}, tmp / "bare.log", ["--store", str(tmp / "bare-store")]), ""),
                       ("floor", Server("floor", {}, tmp / "floor.log", ["--store", str(tmp / "floor-store")]), ""),
                       ("docex-sqlite", sqlite_server, token)]
            if pg_url:
                pg_name = f"docex_bench_{uuid.uuid4().hex[:8]}"
                await pg_admin(pg_url, f'CREATE DATABASE "{pg_name}"')
                try:
                    pg_db = pg_url.rsplit("/", 1)[0] + "/" + pg_name
                    pg_token, pg_server = await prepare_backend("postgres", pg_db, tmp, plan, res)
                    pending.append(("docex-postgres", pg_server, pg_token))
                    if plan.pg_workers > 1:
                        w = ["--workers", str(plan.pg_workers)]
                        pending.append((f"bare-w{plan.pg_workers}", Server(
                            "bare", {}, tmp / "bare-w.log", ["--store", str(tmp / "bare-store"), *w]), ""))
                        pending.append((f"docex-postgres-w{plan.pg_workers}", Server(
                            "docex", docex_env(tmp / "data-postgres-w", pg_db, 512 * MiB), tmp / "docex-pg-w.log",
                            w), pg_token))
                except Exception as exc:  # noqa: BLE001 - the SQLite figures are still worth reporting
                    print(f"PostgreSQL part failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            targets: list[Target] = []
            try:
                for name, server, tok in pending:
                    targets.append(await start(name, server, plan, tok))
                backends += [t.name.split("-", 1)[1] for t in targets if t.name == "docex-postgres"]
                print("(a) upload + send, interleaved windows: " + ", ".join(t.name for t in targets), flush=True)
                await throughput(targets, plan, res)
                for t in targets:
                    if isinstance(t.api, Docex) and t.name in ("docex-sqlite", "docex-postgres"):
                        await fanout(t.name.split("-", 1)[1], t, plan, res)
            finally:
                await stop(targets)
                shutil.rmtree(tmp / "bare-store", ignore_errors=True)
                shutil.rmtree(tmp / "floor-store", ignore_errors=True)
                if pg_name:
                    await pg_admin(pg_url, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await run_memory(tmp, sqlite_url, token, tmp / "data-sqlite", plan, res)
        res.cpu = monitor.summary()
        res.noisy = monitor.other_cores() > 0.25
        print(res.cpu)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    command = "python bench/bench_core.py" + ("".join(f" {a}" for a in sys.argv[1:]))
    tables, doc = report(res, command, info, backends)
    print(f"\n{tables}\n\ntotal {time.perf_counter() - started:.0f} s")
    docs = args.docs or (None if plan.quick else ROOT / "docs" / "performance.md")
    if docs and not args.no_docs:
        write_section(docs, SECTION, "bench_core", doc)
        print(f"wrote {docs}")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run in < 60 s (docs not written unless --docs)")
    p.add_argument("--postgres", metavar="URL", help=f"admin URL of a PostgreSQL database (default: {DEFAULT_PG} "
                   "if reachable); a database docex_bench_<random> is created beside it and dropped after")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--concurrency", type=int, default=0, help="concurrent client connections in (a) (default 8)")
    p.add_argument("--docs", type=Path, default=None,
                   help="markdown file whose section is rewritten (default: docs/performance.md after a full run; "
                   "a --quick run writes only when this is given)")
    p.add_argument("--no-docs", action="store_true", help="print only; leave the docs alone")
    p.add_argument("--client", choices=sorted(CLIENTS), default="wire",
                   help="load generator of (a) and (b): bench/wire.py (default), which spends a third of "
                   "httpx's CPU per request so that the two cores go to the servers, or httpx (the eighth "
                   "round's and earlier)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where the servers' data directories go (default: the system's temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, databases)")
    p.add_argument("--env", action="append", default=[], metavar="DOCEX_X=V",
                   help="extra setting for the docexchange servers (repeatable), e.g. DOCEX_VERIFY_ON_SEND=false")
    # Internal: run one server in this process.
    p.add_argument("--serve", choices=["docex", "bare", "floor"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--pg-workers", type=int, default=2, metavar="N",
                   help="in (a), also run PostgreSQL and a bare server with N API processes each "
                   "(`docexchange serve --workers N`; default 2; 1 leaves it out)")
    return p.parse_args(argv)


def serve_main(args: argparse.Namespace) -> int:
    from _common import create_bare_app, serve

    if args.workers > 1:  # each worker builds its app from the environment
        os.environ["BENCH_BARE_STORE"] = str(args.store or "")
        serve("bench._common:bare_app_from_env" if args.serve == "bare" else "service.api.app:create_app",
              args.port, args.workers)
    elif args.serve == "bare":
        serve(create_bare_app(args.store), args.port)
    elif args.serve == "floor":
        from floor import create_floor_app

        serve(create_floor_app(args.store), args.port)
    else:
        from service.api.app import create_app

        serve(create_app(), args.port)  # Settings from the DOCEX_* environment
    return 0


if __name__ == "__main__":
    ns = parse_args(sys.argv[1:])
    if ns.serve:
        sys.exit(serve_main(ns))
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        sys.exit(runner.run(main(ns)))
