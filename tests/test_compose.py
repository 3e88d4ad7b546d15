"""The production-like topology in ``docker-compose.yaml``, checked without Docker.

No Docker engine runs here, so the file is read as YAML (anchors and merge keys resolved, as Compose
resolves them) and checked for what Tempo needs: every component, one shared configuration, Tempo's
store on PostgreSQL, its mail going to the mail catcher, and the start-up order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yaml"

AIRFLOW_IMAGE = "apache/airflow:3.3.2-python3.11"
METADATA_DB_URL = "postgresql+psycopg2://airflow:airflow@postgres/airflow"
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
LONG_RUNNING_AIRFLOW = tuple(s for s in AIRFLOW_SERVICES if s != "airflow-init")
COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
# Settings that must be identical on every Airflow component, or they cannot work together.
SHARED_SETTINGS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__TEMPO__SQL_ALCHEMY_CONN",
    "AIRFLOW__TEMPO__BASE_URL",
    "AIRFLOW__TEMPO__SECRET_KEY",
    "AIRFLOW__TEMPO__SMTP_CONN_ID",
)
# Tempo's dependencies that the official Airflow image does not ship.
TEMPO_EXTRA_REQUIREMENTS = {"psycopg", "itsdangerous"}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def _default(value: str) -> str:
    """The value Compose uses when the variable in ``${NAME:-default}`` is unset; else the value."""
    match = _INTERPOLATION.fullmatch(value.strip())
    if match and match["op"] in (":-", "-"):
        return match["arg"]
    return value


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (host path or named volume) of each volume."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume.get("source", "")
        else:
            source, target, *_mode = volume.split(":")
            mounts[target] = source
    return mounts


def _repo_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The file of this repository that ``container_path`` shows in the container, if any."""
    path = PurePosixPath(container_path)
    for target, source in _mounts(service).items():
        mount_point = PurePosixPath(target)
        if source.startswith("./") and (path == mount_point or mount_point in path.parents):
            return REPO / source / path.relative_to(mount_point)
    return None


def _container_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.add(int(port["target"]))
        else:
            ports.add(int(str(port).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def _conditions(service: dict[str, Any]) -> dict[str, str]:
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        return dict.fromkeys(depends_on, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends_on.items()}


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


def _healthcheck(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test", "")
    return test if isinstance(test, str) else " ".join(test)


def _smtp_connection(service: dict[str, Any]) -> dict[str, Any]:
    env = _env(service)
    conn_id = env["AIRFLOW__TEMPO__SMTP_CONN_ID"]
    return json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []


# --- the services -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["postgres", "redis", *AIRFLOW_SERVICES])
def test_service_exists(services: dict[str, Any], name: str) -> None:
    assert name in services, f"docker-compose.yaml has no {name!r} service"


def test_backing_services_use_their_images(services: dict[str, Any]) -> None:
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


def test_mail_catcher_takes_smtp_and_shows_a_web_ui(services: dict[str, Any]) -> None:
    connection = _smtp_connection(services["airflow-worker"])
    catcher = services.get(connection["host"])
    assert catcher is not None, f"the SMTP connection's host {connection['host']!r} is not a service"
    assert not _default(catcher["image"]).startswith("apache/airflow"), "the mail catcher is not Airflow"
    ports = _container_ports(catcher)
    assert int(connection["port"]) == 1025
    assert 1025 in ports, "the mail catcher's SMTP port is not published"
    assert ports - {1025}, "the mail catcher publishes no web UI port"


# --- one configuration for every Airflow component ------------------------------------------------------


def test_every_airflow_service_uses_the_same_pinned_image(services: dict[str, Any]) -> None:
    images = {services[name]["image"] for name in AIRFLOW_SERVICES}
    assert len(images) == 1, f"the Airflow services use different images: {sorted(images)}"
    assert _default(images.pop()) == AIRFLOW_IMAGE


@pytest.mark.parametrize("setting", SHARED_SETTINGS)
def test_setting_is_the_same_on_every_airflow_service(services: dict[str, Any], setting: str) -> None:
    values = {name: _env(services[name]).get(setting) for name in AIRFLOW_SERVICES}
    missing = sorted(name for name, value in values.items() if not value)
    assert not missing, f"{setting} is not set on {missing}"
    assert len(set(values.values())) == 1, f"{setting} differs between services: {values}"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_core_settings(services: dict[str, Any], name: str) -> None:
    env = _env(services[name])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == METADATA_DB_URL
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    # The secrets come from the environment (an .env file), with a default for a machine of one's own.
    for secret in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        match = _INTERPOLATION.fullmatch(env[secret])
        assert match, f"{secret} does not come from the environment"
        assert match["op"] == ":-", f"{secret} is not ${{VAR:-default}}"
        assert match["arg"], f"{secret} has an empty default"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_tempo_store_is_its_own_postgresql_database(services: dict[str, Any], name: str) -> None:
    store = urlsplit(_env(services[name])["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"])
    metadata = urlsplit(METADATA_DB_URL)
    assert store.scheme == "postgresql+psycopg", "Tempo's store must use psycopg 3 on PostgreSQL"
    assert store.hostname in services
    assert services[store.hostname]["image"].startswith("postgres:")
    assert store.path.strip("/"), "Tempo's store URL names no database"
    assert store.path != metadata.path, "Tempo's store must not be Airflow's metadata database"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_tempo_base_url_and_secret_key(services: dict[str, Any], name: str) -> None:
    env = _env(services[name])
    assert urlsplit(_default(env["AIRFLOW__TEMPO__BASE_URL"])).scheme in ("http", "https")
    # The key that signs emailed links has no default: Compose must refuse to start without it.
    match = _INTERPOLATION.fullmatch(env["AIRFLOW__TEMPO__SECRET_KEY"])
    assert match, "[tempo] secret_key must come from the environment"
    assert match["name"] == "TEMPO_SECRET_KEY"
    assert match["op"] == ":?", "TEMPO_SECRET_KEY must be required (${TEMPO_SECRET_KEY:?...})"
    assert env.get("AIRFLOW__TEMPO__MAIL_FROM"), "[tempo] mail_from is not set"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_smtp_connection_delivers_to_the_mail_catcher(services: dict[str, Any], name: str) -> None:
    connection = _smtp_connection(services[name])
    assert connection["conn_type"] == "smtp"
    assert connection["host"] == "mailpit"
    assert connection["host"] in services
    assert int(connection["port"]) in _container_ports(services[connection["host"]])
    # The mail catcher speaks plain SMTP.
    assert connection["extra"]["disable_ssl"] is True
    assert connection["extra"]["disable_tls"] is True


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
@pytest.mark.parametrize("folder", ["dags", "plugins", "include"])
def test_project_folder_is_mounted(services: dict[str, Any], name: str, folder: str) -> None:
    mounts = _mounts(services[name])
    target = f"/opt/airflow/{folder}"
    assert target in mounts, f"{name} does not mount {target}"
    assert mounts[target].rstrip("/") == f"./{folder}"
    assert (REPO / folder).is_dir()


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_templates_folder_is_the_mounted_one(services: dict[str, Any], name: str) -> None:
    service = services[name]
    source = _repo_path(service, _env(service)["AIRFLOW__TEMPO__TEMPLATES_FOLDER"])
    assert source is not None, "[tempo] templates_folder is not inside a mounted project folder"
    assert source.resolve() == (REPO / "include" / "templates").resolve()
    assert source.is_dir()


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_plugins_folder_is_importable(services: dict[str, Any], name: str) -> None:
    # `python -m tempo.cli` (airflow-init) imports the package from the mounted plugins folder.
    pythonpath = _env(services[name]).get("PYTHONPATH", "").split(":")
    assert "/opt/airflow/plugins" in pythonpath


def test_tempo_dependencies_are_pinned_as_in_requirements_txt(services: dict[str, Any]) -> None:
    pinned = {}
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pinned[re.sub(r"\[.*\]", "", name).lower()] = version
    value = _default(_env(services["airflow-apiserver"])["_PIP_ADDITIONAL_REQUIREMENTS"])
    installed = {}
    for requirement in value.split():
        name, sep, version = requirement.partition("==")
        assert sep, f"{requirement!r} is not pinned"
        installed[re.sub(r"\[.*\]", "", name).lower()] = version
    assert installed.keys() >= TEMPO_EXTRA_REQUIREMENTS
    for name, version in installed.items():
        assert pinned.get(name) == version, f"{name}=={version} but requirements.txt pins {pinned.get(name)}"


# --- the API server, start-up order, health ------------------------------------------------------------


def test_api_server_publishes_its_port_and_checks_its_health(services: dict[str, Any]) -> None:
    apiserver = services["airflow-apiserver"]
    assert COMMANDS["airflow-apiserver"] in _command(apiserver)
    assert 8080 in _container_ports(apiserver)
    assert "/api/v2/monitor/health" in _healthcheck(apiserver)
    # Tasks reach the execution API at the API server's service name and container port.
    execution_api = urlsplit(_env(apiserver)["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert execution_api.hostname == "airflow-apiserver"
    assert execution_api.port in _container_ports(apiserver)
    assert execution_api.path.rstrip("/") == "/execution"


@pytest.mark.parametrize(("name", "command"), COMMANDS.items(), ids=list(COMMANDS))
def test_component_command(services: dict[str, Any], name: str, command: str) -> None:
    assert _command(services[name]).split() == command.split()


@pytest.mark.parametrize("name", LONG_RUNNING_AIRFLOW)
def test_waits_for_airflow_init_to_complete(services: dict[str, Any], name: str) -> None:
    conditions = _conditions(services[name])
    assert conditions.get("airflow-init") == "service_completed_successfully"
    assert conditions.get("postgres") == "service_healthy"
    assert conditions.get("redis") == "service_healthy"


def test_worker_waits_for_the_execution_api(services: dict[str, Any]) -> None:
    assert _conditions(services["airflow-worker"]).get("airflow-apiserver") == "service_healthy"


@pytest.mark.parametrize("name", ["postgres", "redis", "mailpit", *LONG_RUNNING_AIRFLOW])
def test_long_running_service_restarts_and_has_a_healthcheck(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service.get("restart") in ("always", "unless-stopped", "on-failure")
    healthcheck = service.get("healthcheck") or {}
    assert not healthcheck.get("disable")
    assert _healthcheck(service).startswith(("CMD ", "CMD-SHELL "))


def test_airflow_init_migrates_both_databases_then_loads_the_directory(services: dict[str, Any]) -> None:
    init = services["airflow-init"]
    script = _command(init)
    steps = [
        "airflow db migrate",
        "python -m tempo.cli db upgrade",
        "python -m tempo.cli directory load /opt/airflow/include/directory.yaml",
    ]
    positions = [script.find(step) for step in steps]
    assert -1 not in positions, f"airflow-init does not run {steps[positions.index(-1)]!r}"
    assert positions == sorted(positions), "airflow-init runs its steps out of order"
    assert "set -e" in script, "a failing step must fail airflow-init"
    directory = _repo_path(init, "/opt/airflow/include/directory.yaml")
    assert directory is not None
    assert directory.is_file()
    # A one-shot job: restarting it forever would never let the others start.
    assert init.get("restart", "no") in ("no", "on-failure")
    assert _conditions(init).get("postgres") == "service_healthy"


def test_postgres_init_creates_the_tempo_database(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    scripts = [
        compose.get("configs", {}).get(config["source"], {}).get("content", "")
        for config in postgres.get("configs", [])
        if str(config.get("target", "")).startswith("/docker-entrypoint-initdb.d/")
    ]
    created = {
        name.lower()
        for script in scripts
        for name in re.findall(r'CREATE\s+DATABASE\s+"?(\w+)"?', script, flags=re.IGNORECASE)
    }
    store = urlsplit(_env(compose["services"]["airflow-apiserver"])["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"])
    assert "tempo" in created, "no initdb script of the postgres service creates the tempo database"
    assert store.path.strip("/") in created
    assert _env(postgres)["POSTGRES_DB"] == urlsplit(METADATA_DB_URL).path.strip("/")


def test_postgres_keeps_its_data_on_a_named_volume(compose: dict[str, Any]) -> None:
    data = _mounts(compose["services"]["postgres"]).get("/var/lib/postgresql/data")
    assert data, "postgres data is not on a volume"
    assert data in (compose.get("volumes") or {}), f"{data!r} is not a named volume"


def test_celery_broker_is_redis_and_results_go_to_postgres(services: dict[str, Any]) -> None:
    env = _env(services["airflow-worker"])
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    backend = urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"])
    assert (broker.scheme, broker.hostname) == ("redis", "redis")
    assert backend.scheme.startswith("db+postgresql")
    assert backend.hostname == "postgres"


def test_every_interpolation_has_a_default_or_is_required(compose: dict[str, Any]) -> None:
    # Compose replaces an unset ${NAME} (or $NAME) by nothing, silently; `$$` is a literal `$`.
    silent = []
    for text in _strings(compose):
        text = text.replace("$$", "")
        silent += [m[0] for m in _INTERPOLATION.finditer(text) if m["op"] not in (":-", "-", ":?", "?")]
        silent += re.findall(r"\$[A-Za-z_][A-Za-z0-9_]*", text)
    assert not silent, f"interpolations without a default: {silent}"
