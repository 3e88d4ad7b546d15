from __future__ import annotations

from pathlib import Path

import pytest

from tempo import config


def test_env_overrides_are_read_lazily(monkeypatch):
    monkeypatch.setenv("AIRFLOW__TEMPO__CLOCK_INTERVAL", "0.25")
    assert config.clock_interval() == 0.25
    monkeypatch.setenv("AIRFLOW__TEMPO__CLOCK_INTERVAL", "2")
    assert config.clock_interval() == 2.0


def test_defaults_are_used_when_unset(monkeypatch):
    for key in ("SQL_ALCHEMY_CONN", "SMTP_CONN_ID", "LINK_MAX_AGE"):
        monkeypatch.delenv(f"AIRFLOW__TEMPO__{key}", raising=False)
    assert config.store_url().startswith("sqlite:///") and config.store_url().endswith("/tempo.db")
    assert config.smtp_conn_id() == "smtp_default"
    assert config.link_max_age() == 7 * 24 * 3600


def test_base_url_has_no_trailing_slash(monkeypatch):
    monkeypatch.setenv("AIRFLOW__TEMPO__BASE_URL", "https://tempo.example.com/")
    assert config.base_url() == "https://tempo.example.com"


def test_secret_key_is_required(monkeypatch):
    monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", "")
    monkeypatch.setenv("AIRFLOW__API__SECRET_KEY", "")
    with pytest.raises(RuntimeError, match="secret_key"):
        config.secret_key()


def test_templates_folder_does_not_depend_on_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW__TEMPO__TEMPLATES_FOLDER", raising=False)
    monkeypatch.chdir(tmp_path)
    assert (Path(config.templates_folder()) / "mail" / "task_assigned.j2").is_file()


@pytest.mark.parametrize("airflow_default", ["utc", "UTC", ""], ids=["lower", "upper", "unset"])
def test_timezone_is_a_name_zoneinfo_knows(monkeypatch, airflow_default):
    from zoneinfo import ZoneInfo

    monkeypatch.delenv("AIRFLOW__TEMPO__TIMEZONE", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_TIMEZONE", airflow_default)
    assert config.timezone() == "UTC"
    assert ZoneInfo(config.timezone()) is not None
    monkeypatch.setenv("AIRFLOW__TEMPO__TIMEZONE", "Europe/Amsterdam")
    assert config.timezone() == "Europe/Amsterdam"
