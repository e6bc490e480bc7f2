"""Settings as an operator writes them: secret ones stay out of what is printed (a refusal
of the settings, which any entry point but the command line shows as it is, and the
objects' reprs that end up in logs and tracebacks), and one left empty means its default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings
from service.signing.keys import FileKeyProvider
from service.signing.runtime import RuntimeConfig

SECRETS = {"DOCEX_KEY_PASSPHRASE": "kp-SECRET-1", "DOCEX_SMTP_PASSWORD": "smtp-SECRET-2",
           "DOCEX_PKCS11_PIN": "pin-SECRET-3", "DOCEX_MAIL_SMIME_KEY_PASSPHRASE": "smime-SECRET-4",
           "DOCEX_DATABASE_URL": "postgresql+asyncpg://u:db-SECRET-5@127.0.0.1:1/x"}


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("secret_environment")
def test_a_refusal_of_the_settings_names_the_problem_and_quotes_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCEX_ENVIRONMENT", "production")  # refused: the development PKI is still on
    with pytest.raises(ValidationError) as refused:
        Settings()
    shown = str(refused.value)
    assert "production needs the real trust roots" in shown
    assert [value for value in SECRETS.values() if value in shown] == []


@pytest.mark.usefixtures("secret_environment")
def test_the_settings_and_the_signing_configuration_show_no_secret(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.smtp_password == SECRETS["DOCEX_SMTP_PASSWORD"], "the setting itself is read"
    shown = " ".join([repr(settings), repr(RuntimeConfig.from_settings(settings)),
                      repr(FileKeyProvider(tmp_path / "k.pem", tmp_path / "c.pem", b"kp-SECRET-1"))])
    assert "smtp_host" in shown, "the rest is shown"
    assert [value for value in SECRETS.values() if value in shown] == []


def test_a_setting_left_empty_in_an_environment_file_means_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # "DOCEX_SMTP_CA_FILE=" read as a path was ".", the current directory, and every TLS
    # connection to the relay failed on it.
    for name in ("DOCEX_SMTP_CA_FILE", "DOCEX_TRUST_ROOTS_FILE", "DOCEX_MAIL_TEMPLATES_DIR", "DOCEX_SMTP_PORT",
                 "DOCEX_MAIL_HOLIDAYS"):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert settings.smtp_ca_file is None
    assert settings.trust_roots_file is None
    assert settings.mail_templates_dir is None
    assert settings.smtp_port == 587
