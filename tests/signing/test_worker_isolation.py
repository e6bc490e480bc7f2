"""The verification workers parse hostile files, so they must hold nothing worth taking:
not the service's settings (the key passphrase, the SMTP password, the PKCS#11 PIN, the
database URL) and not its decrypted keys.

A fresh process plays the service: its environment holds the secrets, it opens the
development PKI (the root and issuing CA keys, decrypted, in its memory) and starts a warm
verification pool. Each process under it is then read from outside, as an attacker who
took over a worker would see it: ``/proc/<pid>/environ`` and every readable page of
``/proc/<pid>/mem``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SECRETS = {"DOCEX_KEY_PASSPHRASE": "kp-SECRET-4711", "DOCEX_SMTP_PASSWORD": "smtp-SECRET-4712",
           "DOCEX_PKCS11_PIN": "pin-SECRET-4713", "DOCEX_MAIL_SMIME_KEY_PASSPHRASE": "smime-SECRET-4714",
           "DOCEX_DATABASE_URL": "postgresql+asyncpg://u:db-SECRET-4715@127.0.0.1:1/x"}

_SERVICE = r"""
import asyncio, json, os, re, sys
from pathlib import Path
import psutil
from service.signing import DevelopmentPki, Verifier, VerifierOptions

def readable_memory(pid):
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if not perms.startswith("r"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                yield mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue

def holds(pid, needles):
    found = set()
    for chunk in readable_memory(pid):
        found.update(name for name, needle in needles.items() if needle in chunk)
    return sorted(found)

async def main():
    pki = DevelopmentPki.init(Path(sys.argv[1]), os.environ["DOCEX_KEY_PASSPHRASE"].encode())
    needles = {"passphrase": os.environ["DOCEX_KEY_PASSPHRASE"].encode(),
               "smtp password": os.environ["DOCEX_SMTP_PASSWORD"].encode()}
    for name in ("root-ca", "issuing-ca"):
        p = pki._pairs[name].key.private_numbers().p  # a prime of the CA's RSA key, as OpenSSL holds it
        needles[name + " key"] = p.to_bytes((p.bit_length() + 7) // 8, "little")
    async with Verifier(pki.trust_config(), VerifierOptions(workers=2)) as verifier:
        await verifier.warm_up()
        me = psutil.Process()
        under = me.children(recursive=True)
        report = {"self": holds(me.pid, needles), "processes": len(under), "environ": {}, "memory": {}}
        for proc in under:
            with open(f"/proc/{proc.pid}/environ", "rb") as fh:
                report["environ"][proc.pid] = fh.read().decode(errors="replace")
            report["memory"][proc.pid] = holds(proc.pid, needles)
    print(json.dumps(report))

asyncio.run(main())
"""


def test_verification_workers_hold_neither_the_services_secrets_nor_its_keys(tmp_path: Path) -> None:
    if not Path("/proc/self/mem").exists():
        pytest.skip("reading another process's memory needs Linux's /proc")
    done = subprocess.run([sys.executable, "-c", _SERVICE, str(tmp_path / "keys")], env={**os.environ, **SECRETS},
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # The method finds what is there: the service itself holds its CA keys.
    assert {"root-ca key", "issuing-ca key"} <= set(report["self"]), report["self"]
    for pid, environ in report["environ"].items():
        assert not [name for name in SECRETS if name in environ], f"process {pid} inherited a setting"
        assert not [value for value in SECRETS.values() if value in environ], f"process {pid} inherited a secret"
    for pid, found in report["memory"].items():
        assert found == [], f"process {pid} holds {found}"
    assert report["processes"] >= 3, "the fork server and two workers"
