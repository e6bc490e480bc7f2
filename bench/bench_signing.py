"""Digital-signature benchmarks: service/signing against stock pyHanko, same run, same machine.

    python bench/bench_signing.py [--quick] [--wait-quiet S] [--only a,b,c] [--docs PATH | --no-docs] [--keep]

(a) signing throughput on a one-page PDF: the project's engine (``pades.run_signing``)
    and product call (``DocumentSigner.sign_personal``) against ``pyhanko.sign.signers.sign_pdf``
    with default settings (``PdfSignatureMetadata(field_name=...)``, key loaded once with
    ``SimpleSigner.load``), without and with the same in-process TSA;
(b) bulk verification of N documents signed by the project (personal signature + seal,
    B-T): ``Verifier.verify_many`` (warm pool, one worker per core) against
    ``validate_pdf_signature`` in a loop, both with the modification analysis on and the
    same trust root and CRLs, taking chunks of the documents in turn;
(c) peak RSS signing a 300 MB PDF, each side in a fresh child process that loads its key
    first and reports its own VmHWM: stock ``sign_pdf`` over
    ``IncrementalPdfFileWriter(open file)`` into its default BytesIO against the project
    writing to an output file.
A full run rewrites the generated part of the "Performance" section of docs/signing.md.
On a shared machine, ``--wait-quiet S`` waits (up to S s) before each part for other
processes to go idle; the report says how much CPU they took anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
MiB = 1024 * 1024
# _common (httpx, FastAPI, psutil) is imported inside the parent's functions only: the
# memory children must carry nothing but what the side they measure needs.

PASSPHRASE = b"bench-passphrase"
BOX = (340.0, 115.0, 500.0, 210.0)
TARGET_SIGN, TARGET_VERIFY, TARGET_MEMORY = 5.0, 3.0, 0.25
BEGIN, END = "<!-- bench_signing:begin -->", "<!-- bench_signing:end -->"


@dataclass
class Plan:
    quick: bool
    block_s: float = 2.0  # one timed block of signatures per side
    rounds: int = 3  # alternating stock / project blocks; the median block counts
    documents: int = 1000
    stock_documents: int = 1000  # stock verification is timed on this many of them
    one_worker_documents: int = 200  # the informational 1-worker row uses part of each chunk
    chunks: int = 5  # (b): stock and project verify chunk after chunk, in turn
    big_mb: int = 300

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, block_s=0.6, rounds=2, documents=60, stock_documents=60, one_worker_documents=30, chunks=3)
        return cls(False)


@dataclass
class Row:
    what: str
    project: str
    stock: str
    ratio: float | None
    target: str
    ok: bool | None

    def cells(self) -> list[str]:
        ratio = (
            "—"
            if self.ratio is None
            else (f"{self.ratio:.0%}" if self.target.startswith("≤") else f"{self.ratio:.1f}×")
        )
        verdict = "—" if self.ok is None else ("pass" if self.ok else "FAIL")
        return [self.what, self.project, self.stock, ratio, self.target, verdict]


# --------------------------------------------------------------------------- setup
class Setup:
    """A development PKI, a personal and an organisation certificate, one TSA client."""

    def __init__(self, tmp: Path) -> None:
        from service.signing import DevelopmentPki, FileKeyProvider, build_timestamper

        self.tmp = tmp
        self.pki = DevelopmentPki.init(tmp / "keys", PASSPHRASE)
        self.person = self.pki.issue_personal_cert("u-bench", "Nguyễn Văn An", "an@example.vn")
        self.unit = self.pki.issue_organisation_cert("BENCH", "Văn phòng Tỉnh ủy")
        self.trust = self.pki.trust_config()
        self.timestamper = build_timestamper(self.trust, self.pki.timestamp_response)
        self.person_keys = FileKeyProvider(
            self.person.key_path, self.person.cert_path, PASSPHRASE, self.person.chain_paths
        )
        self.pdf = _one_page_pdf()
        self.src = tmp / "one-page.pdf"
        self.src.write_bytes(self.pdf)

    def stock_signer(self) -> Any:
        from pyhanko.sign import signers

        cert = self.person
        return signers.SimpleSigner.load(
            str(cert.key_path),
            str(cert.cert_path),
            ca_chain_files=[str(p) for p in cert.chain_paths],
            key_passphrase=PASSPHRASE,
        )


def _one_page_pdf(title: str = "docexchange benchmark") -> bytes:
    from _common import pdf_layout

    head, tail = pdf_layout(0, (title.encode() + b" " * 32)[:32])
    return head + tail


# --------------------------------------------------------------------------- (a) signing
def _throughput(op: Callable[[], Any], block_s: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < block_s or count < 3:
        op()
        count += 1
    return count / elapsed


def _compare(stock: Callable[[], Any], project: Callable[[], Any], plan: Plan) -> tuple[float, float]:
    """Median ops/s of alternating blocks (other load on the machine hits both sides alike)."""
    for _ in range(3):
        stock()
        project()
    s_runs, p_runs = [], []
    for _ in range(plan.rounds):
        s_runs.append(_throughput(stock, plan.block_s))
        p_runs.append(_throughput(project, plan.block_s))
    return statistics.median(s_runs), statistics.median(p_runs)


def bench_signing(setup: Setup, plan: Plan) -> list[Row]:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    from service.signing import DocumentSigner, Placement, SignatureLevel, SigningOptions, make_signature_png
    from service.signing.pades import SignJob, run_signing

    stock_signer = setup.stock_signer()
    signer = asyncio.run(setup.person_keys.signer())
    document_signer = DocumentSigner(setup.person_keys, timestamper=setup.timestamper, trust=setup.trust)
    png = make_signature_png("Nguyễn Văn An")  # rendered once, as a stored signature image would be
    out = setup.tmp / "signed.pdf"

    def stock(timestamper: Any) -> Callable[[], Any]:
        def op() -> Any:
            writer = IncrementalPdfFileWriter(io.BytesIO(setup.pdf))
            return signers.sign_pdf(
                writer, signers.PdfSignatureMetadata(field_name="Sig1"), signer=stock_signer, timestamper=timestamper
            )

        return op

    def engine(level: SignatureLevel) -> Callable[[], Any]:
        options = SigningOptions(level=level)
        tsa = setup.timestamper if level is SignatureLevel.B_T else None

        def op() -> Any:
            job = SignJob.invisible("Sig1", signer, options, setup.trust, tsa)
            return asyncio.run(run_signing(setup.src, out, job))

        return op

    def product() -> Any:
        return asyncio.run(
            document_signer.sign_personal(
                setup.src, out, placement=Placement(box=BOX), signer_name="Nguyễn Văn An", image_png=png
            )
        )

    rows = []
    cases = [
        (
            "(a) sign 1-page PDF, B-B: project engine PAdES B-B (invisible) "
            "vs stock default (adbe.pkcs7.detached, invisible, no TSA)",
            stock(None),
            engine(SignatureLevel.B_B),
            True,
        ),
        (
            "(a) sign 1-page PDF, B-T: project engine PAdES B-T vs stock default + same TSA client",
            stock(setup.timestamper),
            engine(SignatureLevel.B_T),
            True,
        ),
        (
            "(a) product call `DocumentSigner.sign_personal` (PAdES B-T, visible image, field created) "
            "vs stock default + same TSA (invisible)",
            stock(setup.timestamper),
            product,
            False,
        ),
    ]
    for what, stock_op, project_op, targeted in cases:
        s, p = _compare(stock_op, project_op, plan)
        ratio = p / s
        print(f"  {what}: project {p:.1f}/s, stock {s:.1f}/s, {ratio:.1f}×", flush=True)
        rows.append(
            Row(
                what,
                f"{p:.1f} sig/s ({1000 / p:.1f} ms)",
                f"{s:.1f} sig/s ({1000 / s:.0f} ms)",
                ratio,
                f"≥ {TARGET_SIGN:.0f}×" if targeted else "(info)",
                ratio >= TARGET_SIGN if targeted else None,
            )
        )
    return rows


# --------------------------------------------------------------------------- (b) verification
def make_documents(setup: Setup, count: int) -> list[Path]:
    """``count`` distinct one-page PDFs, each signed personally then sealed (both B-T)."""
    from service.signing import DocumentSigner, FileKeyProvider, Placement, make_seal_png, make_signature_png

    unit = setup.unit
    sealer = DocumentSigner(
        FileKeyProvider(unit.key_path, unit.cert_path, PASSPHRASE, unit.chain_paths),
        timestamper=setup.timestamper,
        trust=setup.trust,
    )
    person = DocumentSigner(setup.person_keys, timestamper=setup.timestamper, trust=setup.trust)
    png, seal = make_signature_png("Nguyễn Văn An"), make_seal_png("Văn phòng Tỉnh ủy")
    folder = setup.tmp / "docs"
    folder.mkdir()

    async def sign_all() -> list[Path]:
        paths = []
        for i in range(count):
            src, mid, dst = folder / f"{i:04d}-in.pdf", folder / f"{i:04d}-p.pdf", folder / f"{i:04d}.pdf"
            src.write_bytes(_one_page_pdf(f"document {i}"))
            await person.sign_personal(
                src, mid, placement=Placement(box=BOX), signer_name="Nguyễn Văn An", image_png=png
            )
            await sealer.sign_organisation(mid, dst, unit_name="Văn phòng Tỉnh ủy", seal_png=seal)
            src.unlink()
            mid.unlink()
            paths.append(dst)
        return paths

    return asyncio.run(sign_all())


class StockVerifier:
    """``validate_pdf_signature`` on every signature, one ValidationContext for the run."""

    def __init__(self, setup: Setup) -> None:
        from pyhanko_certvalidator import ValidationContext

        roots, crls = setup.trust.roots(), list(setup.trust.crls_der)
        self.context = ValidationContext(trust_roots=roots, crls=crls, allow_fetching=False)

    def passed(self, path: Path) -> bool:
        from pyhanko.pdf_utils.reader import PdfFileReader
        from pyhanko.sign.validation import validate_pdf_signature

        with open(path, "rb") as fh:
            sigs = PdfFileReader(fh).embedded_signatures
            statuses = [validate_pdf_signature(sig, signer_validation_context=self.context) for sig in sigs]
        return len(statuses) == 2 and all(s.bottom_line for s in statuses)


@dataclass
class Tally:
    seconds: float = 0.0
    cpu: float = 0.0  # CPU seconds of this process and its children (the pool workers)
    docs: int = 0
    passed: int = 0

    def rate(self) -> float:
        return self.docs / self.seconds

    def cell(self) -> str:
        per_cpu = self.docs / self.cpu
        return f"{self.rate():.0f} docs/s ({self.seconds:.1f} s for {self.docs}; {per_cpu:.0f} docs per CPU-s)"


def _cpu_seconds() -> float:
    import psutil

    own = time.process_time()
    children = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        children += times.user + times.system
    return own + children


def verify_interleaved(paths: list[Path], setup: Setup, plan: Plan, workers: int) -> dict[str, Tally]:
    """Stock, the pool and a 1-worker pool take turns on chunks of the documents, so load
    from other processes on the machine falls on all three alike."""
    from service.signing import Verdict, Verifier, VerifierOptions

    stock, tallies = StockVerifier(setup), {"stock": Tally(), "pool": Tally(), "one": Tally()}
    size = -(-len(paths) // plan.chunks)
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]

    def timed(name: str, verify: Callable[[list[Path]], int], chunk: list[Path]) -> None:
        cpu, start = _cpu_seconds(), time.perf_counter()
        passed = verify(chunk)
        tally = tallies[name]
        tally.seconds += time.perf_counter() - start
        tally.cpu += _cpu_seconds() - cpu
        tally.docs, tally.passed = tally.docs + len(chunk), tally.passed + passed

    # one event loop for the pools; the stock loop runs outside it (sync API, asyncio.run)
    loop = asyncio.new_event_loop()
    pool = Verifier(setup.trust, VerifierOptions(workers=workers))
    one = Verifier(setup.trust, VerifierOptions(workers=1))

    def with_pool(verifier: Verifier) -> Callable[[list[Path]], int]:
        def verify(chunk: list[Path]) -> int:
            reports = loop.run_until_complete(verifier.verify_many(chunk))
            return sum(r.verdict is Verdict.PASSED for r in reports)

        return verify

    try:
        for verifier in (pool, one):  # warm workers, as in a running service
            loop.run_until_complete(verifier.warm_up())
            with_pool(verifier)(paths[: 2 * workers])
        stock.passed(paths[0])
        for chunk in chunks:
            timed("stock", lambda c: sum(stock.passed(p) for p in c), chunk[: -(-plan.stock_documents // plan.chunks)])
            timed("pool", with_pool(pool), chunk)
            timed("one", with_pool(one), chunk[: -(-plan.one_worker_documents // plan.chunks)])
    finally:
        pool.close()
        one.close()
        loop.close()
    return tallies


def bench_verification(setup: Setup, plan: Plan) -> list[Row]:
    t0 = time.perf_counter()
    paths = make_documents(setup, plan.documents)
    print(f"  signed {len(paths)} documents (personal + seal) in {time.perf_counter() - t0:.0f} s", flush=True)
    n, workers = len(paths), max(1, min(os.cpu_count() or 1, 4))
    tallies = verify_interleaved(paths, setup, plan, workers)
    if any(t.passed != t.docs for t in tallies.values()):
        raise RuntimeError(f"not every document verified as passed: {tallies}")
    stock = tallies["stock"]
    stock_cell = stock.cell() + ("" if stock.docs == n else f" (timed on {stock.docs} of the {n})")
    rows = []
    for name, label, target in (("pool", f"{workers} workers (one per core)", True), ("one", "1 worker", False)):
        tally = tallies[name]
        ratio = tally.rate() / stock.rate()
        print(
            f"  verify, project {label}: {tally.rate():.0f} docs/s vs stock {stock.rate():.0f}, {ratio:.1f}×",
            flush=True,
        )
        rows.append(
            Row(
                f"(b) verify {n} signed docs (2 signatures each, modification analysis on): "
                f"`Verifier.verify_many`, {label} vs stock `validate_pdf_signature` loop (1 process); "
                f"chunks taken in turn",
                tally.cell(),
                stock_cell,
                ratio,
                f"≥ {TARGET_VERIFY:.0f}×" if target else "(info)",
                ratio >= TARGET_VERIFY if target else None,
            )
        )
    return rows


# --------------------------------------------------------------------------- (c) memory
def child_sign(kind: str, pdf: Path, key: Path, cert: Path, chain: list[Path]) -> None:
    """Child process: load the key, sign ``pdf`` once; print its RSS before signing and its peak.

    The peak is the child's own VmHWM (``/proc/self/status``): ``ru_maxrss`` of a child
    also counts the parent's pages at fork time. The stock child imports pyHanko only.
    """
    logging.getLogger("pyhanko").setLevel(logging.ERROR)
    if kind == "stock":
        from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
        from pyhanko.sign import signers

        signer = signers.SimpleSigner.load(
            str(key), str(cert), ca_chain_files=[str(p) for p in chain], key_passphrase=PASSPHRASE
        )
        before, start = _proc_status("VmRSS"), time.perf_counter()
        with open(pdf, "rb") as fh:
            out = signers.sign_pdf(
                IncrementalPdfFileWriter(fh), signers.PdfSignatureMetadata(field_name="Sig1"), signer=signer
            )
        size = len(out.getbuffer())
    else:
        from service.signing import FileKeyProvider, SignatureLevel, SigningOptions
        from service.signing.pades import SignJob, run_signing

        loaded = asyncio.run(FileKeyProvider(key, cert, PASSPHRASE, tuple(chain)).signer())
        options = SigningOptions(level=SignatureLevel.B_B)
        job = SignJob.invisible("Sig1", loaded, options)
        dst = pdf.with_name("big-signed.pdf")
        before, start = _proc_status("VmRSS"), time.perf_counter()
        size = asyncio.run(run_signing(pdf, dst, job)).output.stat().st_size
        dst.unlink()
    print(
        json.dumps(
            {"before": before, "peak": _proc_status("VmHWM"), "seconds": time.perf_counter() - start, "size": size}
        )
    )


def _proc_status(field: str) -> int:
    """A memory field of /proc/self/status, in bytes."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _measure_child(kind: str, pdf: Path, setup: Setup) -> dict[str, Any]:
    cert = setup.person
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        str(pdf),
        str(cert.key_path),
        str(cert.cert_path),
        *map(str, cert.chain_paths),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode:
        raise RuntimeError(f"{kind} child failed ({out.returncode}): {out.stderr.decode(errors='replace')[-2000:]}")
    data: dict[str, Any] = json.loads(out.stdout)
    if data["size"] < pdf.stat().st_size:
        raise RuntimeError(f"{kind} child wrote a short file")
    return data


def bench_memory(setup: Setup, plan: Plan) -> list[Row]:
    from _common import write_big_pdf

    pdf = setup.tmp / "big.pdf"
    write_big_pdf(pdf, plan.big_mb * MiB)
    stock = _measure_child("stock", pdf, setup)
    project = _measure_child("project", pdf, setup)
    pdf.unlink()
    ratio = project["peak"] / stock["peak"]
    print(
        f"  {plan.big_mb} MB: project peak {project['peak'] / MiB:.0f} MB, "
        f"stock {stock['peak'] / MiB:.0f} MB, {ratio:.0%}",
        flush=True,
    )

    def cell(d: dict[str, Any]) -> str:
        return f"{d['peak'] / MiB:.0f} MB (before signing {d['before'] / MiB:.0f} MB; {d['seconds']:.1f} s)"

    return [
        Row(
            f"(c) peak RSS (VmHWM) signing a {plan.big_mb} MB PDF, fresh child each, key loaded first; B-B, invisible: "
            "project `run_signing` to a file vs stock `sign_pdf` over the open file to its BytesIO",
            cell(project),
            cell(stock),
            ratio,
            f"≤ {TARGET_MEMORY:.0%}",
            ratio <= TARGET_MEMORY,
        )
    ]


# --------------------------------------------------------------------------- report
def report(rows: list[Row], info: dict[str, str], cpu: str) -> str:
    from _common import git_revision, md_table

    command = " ".join(["python bench/bench_signing.py", *sys.argv[1:]])
    table = md_table(["measure", "project", "stock pyHanko", "ratio", "target", "result"], [r.cells() for r in rows])
    return (
        f"Command: `{command}` — {info['date']}, {info['label']} (nproc {info['nproc']}), Python {info['python']}, "
        f"commit {git_revision()}.\n\n{table}\n\n{cpu}\n"
    )


def _wait_quiet(limit_s: float, busy_percent: float = 20.0) -> None:
    """Wait (at most ``limit_s``) until the machine's CPU use, ours being idle, drops low."""
    import psutil

    waited, start = False, time.perf_counter()
    while time.perf_counter() - start < limit_s and psutil.cpu_percent(interval=3) > busy_percent:
        waited = True
    if waited:
        print(f"  (waited {time.perf_counter() - start:.0f} s for other processes to go idle)", flush=True)


def write_docs(doc: Path, body: str) -> None:
    """Replace the generated block inside the "## Performance" section of ``doc`` only."""
    text = doc.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{body.strip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    elif "## Performance\n" in text:
        text = text.replace("## Performance\n", f"## Performance\n\n{block}\n", 1)
    else:
        text = text.rstrip() + f"\n\n## Performance\n\n{block}\n"
    doc.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 90 s): fewer documents, shorter blocks")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "signing.md")
    parser.add_argument("--no-docs", action="store_true", help="print only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each part wait up to S seconds for other processes to go idle",
    )
    parser.add_argument("--only", default="a,b,c", help="comma-separated parts to run (a, b, c); implies --no-docs")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # KIND PDF KEY CERT CHAIN...
    args = parser.parse_args()
    if args.child:
        kind, pdf, key, cert, *chain = args.child
        return child_sign(kind, Path(pdf), Path(key), Path(cert), [Path(p) for p in chain])
    from _common import CpuMonitor, machine

    logging.getLogger("pyhanko").setLevel(logging.ERROR)
    plan, info = Plan.make(args.quick), machine()
    tmp = Path(tempfile.mkdtemp(prefix="bench-signing-"))
    started = time.perf_counter()
    try:
        with CpuMonitor() as cpu:
            setup = Setup(tmp)
            print(f"bench_signing on {info['label']} ({'quick' if plan.quick else 'full'})", flush=True)
            parts = {"a": bench_signing, "b": bench_verification, "c": bench_memory}
            rows = []
            for key in args.only.split(","):
                _wait_quiet(args.wait_quiet)
                rows += parts[key.strip()](setup, plan)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    body = report(rows, info, cpu.summary() + f"; total run {time.perf_counter() - started:.0f} s.")
    print("\n" + body)
    if not (args.quick or args.no_docs or args.only != "a,b,c"):
        write_docs(args.docs, body)
        print(f"wrote {args.docs}")


if __name__ == "__main__":
    main()
