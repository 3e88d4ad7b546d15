"""The ``[tempo]`` configuration section.

Every option is read when it is needed, never at import time, so ``AIRFLOW__TEMPO__*`` environment
variables and ``airflow.cfg`` edits apply without reloading modules. ``OPTIONS`` is the single list
of options: ``tempo config`` prints it, and a test keeps the README's table naming every one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tempo.working_hours import WorkingCalendar

SECTION = "tempo"


@dataclass(frozen=True)
class Option:
    key: str
    default: str
    description: str
    sensitive: bool = False


def _airflow_home() -> str:
    from airflow.configuration import get_airflow_home

    return get_airflow_home()


def _project_include() -> Path:
    return Path(__file__).resolve().parents[2] / "include"


def _package_templates_folder() -> str:
    # The templates ship beside the package (``include/templates`` at the project top), found
    # relative to this file so the working directory never matters.
    return str(_project_include() / "templates")


OPTIONS: tuple[Option, ...] = (
    Option(
        "sql_alchemy_conn",
        "sqlite:///{AIRFLOW_HOME}/tempo.db",
        "Tempo's own store (SQLAlchemy URL). Never Airflow's metadata database. "
        "PostgreSQL: `postgresql+psycopg://user:pass@host/db`.",
        sensitive=True,
    ),
    Option(
        "base_url",
        "[api] base_url, else http://localhost:8080",
        "Public URL of the Airflow API server; every link in an email is built from it.",
    ),
    Option(
        "secret_key",
        "[api] secret_key",
        "Key that signs email links. Must be the same on every component.",
        sensitive=True,
    ),
    Option(
        "previous_secret_keys",
        "",
        "Comma-separated retired keys (key rotation): they still verify links and forms signed before "
        "`secret_key_rotated_at`, for `link_max_age` seconds after it; new links use `secret_key` only.",
        sensitive=True,
    ),
    Option(
        "secret_key_rotated_at",
        "",
        "When `secret_key` replaced the `previous_secret_keys` (ISO 8601, e.g. `2026-12-01T18:00:00+00:00`). "
        "Without it the retired keys verify nothing.",
    ),
    Option("link_max_age", "604800", "Seconds an emailed action link stays valid (default 7 days)."),
    Option("smtp_conn_id", "smtp_default", "Airflow connection used to deliver Tempo's email."),
    Option("mail_from", "Tempo <tempo@localhost>", "Sender address of Tempo's email."),
    Option("templates_folder", "include/templates of the project", "Folder of the page and email templates."),
    Option("timezone", "[core] default_timezone", "Timezone for due dates and dates in email."),
    Option(
        "clock_interval",
        "5",
        "Seconds between the clock's ticks in each API server (SLA timers, owed wakes, the outbox "
        "sweep; one API server at a time holds the clock). 0 turns the clock off in this process.",
    ),
    Option(
        "attachments_path",
        "file://{AIRFLOW_HOME}/tempo/attachments",
        "Where attachment content is stored (any Airflow ObjectStoragePath URL: file://, s3://, gs://).",
    ),
    Option("outbox_max_attempts", "8", "Delivery attempts for one email before it is marked failed."),
    Option(
        "outbox_sweep_interval",
        "30",
        "Seconds between the clock's retries of undelivered email.",
    ),
    Option(
        "working_days",
        "mon-fri",
        "Default working days for business-time due dates (a unit may have its own).",
    ),
    Option("working_hours", "09:00-17:00", "Default working hours, e.g. `09:00-12:00,13:00-17:00`."),
    Option("holidays", "", "Comma-separated ISO dates that are not working days."),
    Option(
        "catalog_file",
        "include/catalogs.yaml of the project",
        "Request types (with their own fields) and the decision catalog of customer requests.",
    ),
    Option(
        "public_requests_per_hour",
        "10",
        "Requests one client may register per hour on the public request page (0 turns the page off).",
    ),
    Option(
        "public_request_max_mb",
        "25",
        "The largest request the public request page reads, files included, in MB (413 beyond).",
    ),
)

_DEFAULTS = {option.key: option.default for option in OPTIONS}


def _get(key: str, fallback: str) -> str:
    from airflow.configuration import conf

    value = conf.get(SECTION, key, fallback=fallback)
    return fallback if value is None or value == "" else str(value)


def store_url() -> str:
    default = _DEFAULTS["sql_alchemy_conn"].replace("{AIRFLOW_HOME}", _airflow_home())
    return _get("sql_alchemy_conn", default)


def base_url() -> str:
    from airflow.configuration import conf

    api_base = conf.get("api", "base_url", fallback="") or "http://localhost:8080"
    return _get("base_url", api_base).rstrip("/")


def secret_key() -> str:
    from airflow.configuration import conf

    key = _get("secret_key", conf.get("api", "secret_key", fallback="") or "")
    if not key:
        raise RuntimeError("[tempo] secret_key (or [api] secret_key) must be set to sign email links")
    return key


def previous_secret_keys() -> list[str]:
    return [k.strip() for k in _get("previous_secret_keys", "").split(",") if k.strip()]


def secret_key_rotated_at() -> datetime | None:
    """When the current key replaced the retired ones; None when unset or not a timestamp (retired
    keys then verify nothing: the grace period has no start)."""
    raw = _get("secret_key_rotated_at", "")
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def link_max_age() -> int:
    return int(_get("link_max_age", _DEFAULTS["link_max_age"]))


def smtp_conn_id() -> str:
    return _get("smtp_conn_id", _DEFAULTS["smtp_conn_id"])


def mail_from() -> str:
    return _get("mail_from", _DEFAULTS["mail_from"])


def templates_folder() -> str:
    return _get("templates_folder", _package_templates_folder())


def timezone() -> str:
    """An IANA name zoneinfo knows: Airflow's default spells UTC in lower case, zoneinfo does not."""
    from airflow.configuration import conf

    name = _get("timezone", conf.get("core", "default_timezone", fallback="UTC") or "UTC")
    return "UTC" if name.lower() == "utc" else name


def clock_interval() -> float:
    return float(_get("clock_interval", _DEFAULTS["clock_interval"]))


def attachments_path() -> str:
    default = "file://" + os.path.join(_airflow_home(), "tempo", "attachments")
    return _get("attachments_path", default)


def outbox_max_attempts() -> int:
    return int(_get("outbox_max_attempts", _DEFAULTS["outbox_max_attempts"]))


def outbox_sweep_interval() -> float:
    return float(_get("outbox_sweep_interval", _DEFAULTS["outbox_sweep_interval"]))


def catalog_file() -> str:
    return _get("catalog_file", str(_project_include() / "catalogs.yaml"))


def public_requests_per_hour() -> int:
    return int(_get("public_requests_per_hour", _DEFAULTS["public_requests_per_hour"]))


def public_request_max_bytes() -> int:
    return int(_get("public_request_max_mb", _DEFAULTS["public_request_max_mb"])) * 1024 * 1024


def default_calendar() -> WorkingCalendar:
    """The working hours of ``[tempo]``: ``working_days``, ``working_hours``, ``holidays``, ``timezone``."""
    from tempo.working_hours import WorkingCalendar

    holidays = [h.strip() for h in _get("holidays", "").split(",") if h.strip()]
    return WorkingCalendar.parse(
        timezone=timezone(),
        days=_get("working_days", _DEFAULTS["working_days"]),
        hours=_get("working_hours", _DEFAULTS["working_hours"]),
        holidays=holidays,
    )
