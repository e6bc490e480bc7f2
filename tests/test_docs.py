"""The README stays true: every setting is in its configuration table."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [name for name in Settings.model_fields if f"`DOCEX_{name.upper()}`" not in README]
    assert missing == [], f"add these settings to the README's configuration table: {missing}"
