"""The API process starts without the signing stack: PDF signing and verification (pyHanko,
fonts, certificate validation: tens of MB) load on the first request that needs them,
which keeps an idle process, and one streaming a large upload, small. On SQLite it does not
load the PostgreSQL driver either."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import sys
from service.api.app import create_app
create_app()
print(sorted(m for m in ("pyhanko", "pyhanko_certvalidator", "fontTools", "asyncpg") if m in sys.modules))
"""


def test_building_the_app_loads_no_signing_library(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"DOCEX_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
