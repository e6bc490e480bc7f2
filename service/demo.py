"""Demo data: one province, ~25 commune committees, ~300 branches, people and tokens."""

from __future__ import annotations

import random
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service import auth, units
from service.units import UnitSpec

__all__ = ["PROVINCE_CODE", "load_demo"]

PROVINCE_CODE = "000.00.00.H99"
_COMMUNES = [
    "xã Tân Lập", "xã Hòa Bình", "phường Hồng Hà", "xã Đồng Tâm", "phường Quang Trung", "xã Yên Phú",
    "xã Thanh Sơn", "phường Trần Hưng Đạo", "xã Minh Khai", "xã An Thịnh", "phường Bạch Đằng",
    "xã Phú Lộc", "xã Nghĩa Hưng", "phường Lê Lợi", "xã Kim Liên", "xã Việt Hưng", "xã Cẩm Phả",
    "phường Hoàng Diệu", "xã Tiên Du", "xã Đại Đồng", "xã Quế Võ", "phường Nguyễn Trãi",
    "xã Hải Xuân", "xã Lạc Thủy", "xã Mường Khương",
]
_BRANCHES = [
    "Chi bộ thôn {n}", "Chi bộ khu phố {n}", "Chi bộ Trường Tiểu học {c}", "Chi bộ Trạm Y tế {c}",
    "Chi bộ Công an {c}", "Chi bộ Quân sự {c}", "Chi bộ Trường THCS {c}", "Chi bộ Hợp tác xã {c}",
]
_VILLAGES = ["Đông", "Tây", "Nam", "Bắc", "Thượng", "Hạ", "Trung", "Cầu", "Đình", "Chợ", "Mới", "Giữa"]
_PEOPLE = ["Nguyễn Văn An", "Trần Thị Bình", "Lê Văn Cường", "Phạm Thị Dung", "Hoàng Văn Em",
           "Vũ Thị Giang", "Đặng Văn Hùng", "Bùi Thị Lan", "Đỗ Văn Minh", "Ngô Thị Nga"]


def demo_units() -> list[UnitSpec]:
    """The province tree, with QCVN 102 identifier codes (H99 is fictitious)."""
    rng = random.Random(2025)
    specs = [UnitSpec(PROVINCE_CODE, "Tỉnh ủy Hà Sơn", "Tỉnh ủy", None, ["vanphong@tinhuy.hason.vn"], True)]
    sealed = {specs[0].name}  # a unit with a seal has a name of its own (units.check_seal_name)
    for i, commune in enumerate(_COMMUNES, start=1):
        code = f"000.00.{i:02d}.H99"
        slug = f"dangu{i:02d}"
        specs.append(UnitSpec(code, f"Đảng ủy {commune}", "Đảng ủy xã", PROVINCE_CODE,
                              [f"{slug}@tinhuy.hason.vn"], True))
        short = commune.split(" ", 1)[1]
        for j in range(1, 13):
            pattern = _BRANCHES[(j - 1) % len(_BRANCHES)]
            name = pattern.format(n=_VILLAGES[(j + i) % len(_VILLAGES)] + f" {j}", c=short)
            seal = rng.random() < 0.1
            if seal and name in sealed:
                name = f"{name} {short}"
            sealed |= {name} if seal else set()
            specs.append(UnitSpec(f"000.{j:02d}.{i:02d}.H99", name, "Chi bộ", code,
                                  [f"{slug}.cb{j:02d}@tinhuy.hason.vn"], seal))
    return specs


async def load_demo(session: AsyncSession, token_file: Path, token_days: int = 30) -> int:
    """Load the tree and people (idempotent); write fresh tokens to ``token_file``."""
    if (await session.execute(select(col(units.Unit.id)).where(col(units.Unit.code) == PROVINCE_CODE))).first():
        return 0
    await units.import_tree(session, demo_units())
    lines: list[str] = []
    province = await units.get_unit(session, PROVINCE_CODE)
    await _person(session, province, "admin.tinhuy", "Quản trị Tỉnh ủy", ["admin", "clerk"], "ADMIN", lines, token_days)
    await _person(session, province, "vanthu.tinhuy", "Trần Thị Bình", ["clerk"], "CLERK_TU", lines, token_days)
    await _person(session, province, "bithu.tinhuy", "Nguyễn Văn An", ["signer"], "SIGNER_TU", lines, token_days)
    await _person(session, province, "kiemtra.tinhuy", "Lê Văn Cường", ["auditor"], "AUDITOR", lines, token_days)
    for i in range(1, len(_COMMUNES) + 1):
        unit = await units.get_unit(session, f"000.00.{i:02d}.H99")
        clerk_var = "CLERK_XA1" if i == 1 else ""
        await _person(session, unit, f"vanthu.xa{i:02d}", _PEOPLE[i % 10], ["clerk"], clerk_var, lines, token_days)
        await _person(session, unit, f"bithu.xa{i:02d}", _PEOPLE[(i + 3) % 10], ["signer"], "", lines, token_days)
    branch = await units.get_unit(session, "000.01.01.H99")
    await _person(session, branch, "vanthu.cb0101", "Phạm Thị Dung", ["clerk"], "CLERK_CB", lines, token_days)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.touch(mode=0o600)
    token_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


async def _person(session: AsyncSession, unit: units.Unit, username: str, name: str, roles: list[str],
                  var: str, lines: list[str], days: int) -> None:
    user = await auth.create_user(session, unit=unit, username=username, full_name=name, roles=roles,
                                  position="Văn thư" if "clerk" in roles else "Bí thư",
                                  email=f"{username}@tinhuy.hason.vn")
    if var:
        issued = await auth.issue_token(session, user, days=days, label="demo")
        lines.append(f"export {var}={issued.token}")
