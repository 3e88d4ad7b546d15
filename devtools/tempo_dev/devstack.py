"""Airflow with Tempo on one machine: the components as separate processes, on loopback only.

``make demo`` and the end-to-end tests both start Airflow through this module, so the demo is the
tested topology: api-server (bound to 127.0.0.1), scheduler, dag-processor and triggerer, each with
``--skip-serve-logs`` (``airflow standalone`` would bind log servers on every interface),
LocalExecutor, SimpleAuthManager with known users, and a local mail catcher for the SMTP connection.

No component outlives its stack: ``stop()`` ends them all within seconds (``tempo_dev.guard``), the
guard does the same when the process running the stack ends without stopping it, and each component
also gets SIGTERM from Linux when that process ends (PR_SET_PDEATHSIG) should the guard be gone too.
"""

from __future__ import annotations

import compileall
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tempo_dev.guard import STOP_GRACE

PROJECT = Path(__file__).resolve().parents[2]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Airflow users of the demo: the people of ``include/directory.yaml`` plus an admin.
DEMO_USERS = {
    "admin": "admin",
    "rob": "user",
    "sandra": "user",
    "john": "user",
    "helen": "user",
    "mike": "user",
    "olga": "admin",
    "sam": "user",
    "fiona": "user",
    "laura": "user",
    "steve": "user",
}
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: How often a read of Airflow's REST API, or the start of a run, is tried before its 5xx counts. On
#: SQLite, two of Airflow's own connections can wait on each other's locks (a request's open read
#: against another's commit) until SQLite's lock timeout (5 s) fails one of them with a 500.
READ_ATTEMPTS = 4


def _stops_with(parent: int) -> Callable[[], None]:
    """What makes the calling process get SIGTERM when ``parent`` ends, however it ends: a
    ``preexec_fn`` for a child of ``parent``, or a call in a process whose parent is ``parent``.

    Linux sends the signal when the *thread* that started the process ends: start components from
    the thread that outlives them (every caller uses the main thread).
    """
    # Looked up here, in the parent: a child forked from a threaded process should not load libraries.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it ended before the request took effect: nobody will signal
            os._exit(1)

    return arm


def wait_until(
    predicate: Callable[[], Any], timeout: float = 120, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class AirflowStack:
    home: Path
    dags_folder: Path = PROJECT / "dags"
    plugins_folder: Path = PROJECT / "plugins"
    port: int = 0
    smtp_port: int | None = None
    store_url: str | None = None
    metadata_url: str | None = None
    passwords: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    components: tuple[str, ...] = COMPONENTS
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: the command line of every component started, by name, so that a killed one can be restarted
    commands: dict[str, list[str]] = field(default_factory=dict)
    #: base URL of every API server by component name (``api-server`` serves ``base_url``)
    api_servers: dict[str, str] = field(default_factory=dict)
    _token: str | None = None
    #: ``python -m tempo_dev.guard``, told the pid of every component; started with the first one
    _guard: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.port = self.port or free_port()
        self.store_url = self.store_url or f"sqlite:///{self.home / 'tempo.db'}"
        self.metadata_url = self.metadata_url or f"sqlite:///{self.home / 'airflow.db'}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment of every component and command of this stack: the one place of the Airflow
        and Tempo configuration the harness writes."""
        secrets_file = self.home / "secrets.json"
        if not secrets_file.exists():
            secrets_file.write_text(
                json.dumps({k: secrets.token_urlsafe(64) for k in ("jwt", "api", "tempo")})
            )
        keys = json.loads(secrets_file.read_text())
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.plugins_folder),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in DEMO_USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": str(self.metadata_url),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__SECRET_KEY": keys["api"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt"],
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            "AIRFLOW__TEMPO__SQL_ALCHEMY_CONN": str(self.store_url),
            "AIRFLOW__TEMPO__BASE_URL": self.base_url,
            "AIRFLOW__TEMPO__SECRET_KEY": keys["tempo"],
            "AIRFLOW__TEMPO__CLOCK_INTERVAL": "5",
            "PYTHONUNBUFFERED": "1",
        }
        if str(self.metadata_url).startswith("postgresql"):
            # Airflow also opens its metadata database asynchronously; psycopg 3 (Tempo's driver) does both.
            async_url = str(self.metadata_url).split("://", 1)[1]
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = f"postgresql+psycopg://{async_url}"
        if self.smtp_port is not None:
            env["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": self.smtp_port,
                    "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 10},
                }
            )
        env.update(self.extra_env)
        return env

    def _command(
        self, module: str, args: tuple[str, ...], check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", module, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{module} {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}"
            )
        return result

    def airflow(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return self._command("airflow", args, check, timeout)

    def tempo(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._command("tempo.cli", args, check, 300)

    def prepare(self, directory_file: Path | None = PROJECT / "include" / "directory.yaml") -> None:
        """Migrate Airflow's and Tempo's databases, write the users' passwords, load the directory."""
        self.home.mkdir(parents=True, exist_ok=True)
        passwords_file = self.home / "passwords.json"
        if not passwords_file.exists():
            passwords_file.write_text(json.dumps({u: f"{u}-tempo" for u in DEMO_USERS}))
        self.passwords = json.loads(passwords_file.read_text())
        self.airflow("db", "migrate")
        self.tempo("db", "upgrade")
        if directory_file is not None:
            self.tempo("directory", "load", str(directory_file))

    def start(self) -> None:
        logs = self.home / "component-logs"
        logs.mkdir(parents=True, exist_ok=True)
        # Every task run imports the plugin's package afresh. Installed from a wheel it comes with
        # its bytecode; here it is an editable checkout, and where PYTHONDONTWRITEBYTECODE is set
        # (CI images often set it) each task process would compile it again: 10 ms of CPU per run
        # that a production install never pays. Compile once, as ``pip install`` does.
        compileall.compile_dir(str(self.plugins_folder), quiet=1)
        commands = {
            "api-server": ["api-server", "-H", "127.0.0.1", "-p", str(self.port), "-w", "1"],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer", "--skip-serve-logs"],
        }
        if "api-server" in self.components:
            self.api_servers["api-server"] = self.base_url
        env = self.env()
        for name in self.components:
            self.start_component(name, commands[name], env, logs)

    def add_triggerer(self, name: str) -> None:
        """One more triggerer on the same databases: triggers are shared out between them."""
        self.start_component(
            name, ["triggerer", "--skip-serve-logs"], self.env(), self.home / "component-logs"
        )

    def add_api_server(self, name: str) -> str:
        """One more API server on its own port, same databases and keys; returns its base URL."""
        port = free_port()
        self.api_servers[name] = f"http://127.0.0.1:{port}"
        args = ["api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"]
        self.start_component(name, args, self.env(), self.home / "component-logs")
        return self.api_servers[name]

    def restart(self, name: str) -> None:
        """Start a killed (or stopped) component again with its original command line."""
        self.start_component(name, self.commands[name], self.env(), self.home / "component-logs")

    def start_component(self, name: str, args: list[str], env: Mapping[str, str], logs: Path) -> None:
        """Start ``airflow *args`` as the component ``name``, leading a session of its own."""
        self.commands[name] = list(args)
        out = (logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_stops_with(os.getpid()),
        )
        self._tell_guard(self.processes[name].pid)

    def _tell_guard(self, pid: int) -> None:
        """``pid`` (a component's session) is the guard's to stop; ``-pid``: no longer (reaped)."""
        if self._guard is None:
            # A session of its own, so that Ctrl-C or a closed terminal does not end it with the rest.
            self._guard = subprocess.Popen(
                [sys.executable, "-m", "tempo_dev.guard"], stdin=subprocess.PIPE, start_new_session=True
            )
        assert self._guard.stdin is not None
        self._guard.stdin.write(f"{pid}\n".encode())
        self._guard.stdin.flush()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        os.killpg(process.pid, sig)
        process.wait(timeout=60)
        # Reaped, its pid may be reused: the guard must not stop whatever takes it.
        self._tell_guard(-process.pid)

    def stop(self) -> None:
        """Stop every component within ``STOP_GRACE`` seconds and a little: the guard sends SIGTERM to
        everything they started and SIGKILL to what is left after the grace period."""
        if self._guard is not None:
            assert self._guard.stdin is not None
            self._guard.stdin.close()
            self._guard.wait(timeout=2 * STOP_GRACE + 30)
            self._guard = None
        for name in list(self.processes):
            self.processes.pop(name).wait(timeout=30)

    def log(self, name: str) -> str:
        path = self.home / "component-logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- REST API ----------------------------------------------------------------------------------

    def token(self, username: str = "admin", server: str | None = None) -> str:
        """A JWT for ``username`` from the API server named ``server`` (default: the first); every
        API server accepts it, as they share the JWT secret."""
        base_url = self.api_servers[server] if server else self.base_url
        response = httpx.post(
            f"{base_url}/auth/token",
            json={"username": username, "password": self.passwords[username]},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(
        self, method: str, path: str, *, user: str = "admin", server: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Call ``path`` on the API server named ``server`` (default: the first) as ``user``."""
        if user == "admin" and self._token is None:
            self._token = self.token("admin")
        token = self._token if user == "admin" else self.token(user)
        base_url = self.api_servers[server] if server else self.base_url
        # A read that met a lock timeout (see READ_ATTEMPTS) is asked again; a write is not.
        attempts = READ_ATTEMPTS if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                response = httpx.request(
                    method,
                    f"{base_url}{path}",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                    **kwargs,
                )
            except httpx.TransportError:
                if attempt == attempts:
                    raise
            else:
                if response.status_code < 500 or attempt == attempts:
                    return response
            time.sleep(attempt)
        raise AssertionError("unreachable")

    def wait_ready(self, dag_ids: Iterable[str], timeout: float = 240) -> None:
        """Until the API answers and every DAG in ``dag_ids`` is parsed and unpaused."""
        deadline = time.monotonic() + timeout
        pending = set(dag_ids)
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                for dag_id in list(pending):
                    response = self.api("GET", f"/api/v2/dags/{dag_id}")
                    if response.status_code == 200:
                        if response.json().get("is_paused"):
                            self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
                        pending.discard(dag_id)
                if not pending and self._triggerer_alive():
                    self._warm_execution_api()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow not ready after {timeout}s; waiting for {sorted(pending)}")

    def _warm_execution_api(self, *base_urls: str) -> None:
        """Build the task execution API of each API server (default: all) now rather than on a
        task's first call.

        Airflow builds that app (its versioned routes) on the first request to ``/execution/``, in the
        server's event loop: tens of seconds on a busy machine, during which the server answers
        nothing, and the first task's start call times out and fails its run.
        """
        for base_url in base_urls or list(self.api_servers.values()) or [self.base_url]:
            httpx.get(f"{base_url}/execution/health", timeout=300).raise_for_status()

    def wait_api_server(self, name: str, timeout: float = 240) -> None:
        """Until the API server ``name`` answers its health check, its execution API built."""

        def healthy() -> bool:
            self._check_alive()
            try:
                return httpx.get(f"{self.api_servers[name]}/api/v2/monitor/health", timeout=5).is_success
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=timeout, interval=0.5, what=f"{name} to answer")
        self._warm_execution_api(self.api_servers[name])

    def _triggerer_alive(self) -> bool:
        if "triggerer" not in self.processes:
            return True
        response = self.api("GET", "/api/v2/monitor/health")
        status = (
            (response.json().get("triggerer") or {}).get("status") if response.status_code == 200 else None
        )
        return status == "healthy"

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log(name)[-4000:]}")

    def trigger(
        self, dag_id: str, conf: Mapping[str, Any], run_id: str | None = None, user: str = "admin"
    ) -> str:
        """Start a run of ``dag_id`` and return its run id.

        The run id is chosen here so that a 500 or a timeout (see ``READ_ATTEMPTS``) can be retried
        without starting a second run: a 409 on a retry means an earlier attempt landed.
        """
        run_id = run_id or f"manual__{secrets.token_hex(8)}"
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf), "dag_run_id": run_id}
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                response = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body, user=user)
            except httpx.TransportError:
                if attempt == READ_ATTEMPTS:
                    raise
            else:
                if attempt > 1 and response.status_code == 409:
                    return run_id
                if response.status_code < 500 or attempt == READ_ATTEMPTS:
                    response.raise_for_status()
                    return str(response.json()["dag_run_id"])
            time.sleep(attempt)
        raise AssertionError("unreachable")

    def run_state(self, dag_id: str, run_id: str) -> str:
        response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        return str(response.json()["state"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(0.5)
        raise TimeoutError(f"run {run_id} of {dag_id} not finished after {timeout}s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        response.raise_for_status()
        return {ti["task_id"]: ti["state"] for ti in response.json()["task_instances"]}

    def task_tries(self, dag_id: str, run_id: str) -> dict[str, int]:
        response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        response.raise_for_status()
        return {ti["task_id"]: ti["try_number"] for ti in response.json()["task_instances"]}


def run_demo(home: Path, port: int = 8080, smtp_port: int = 1025) -> None:
    """``make demo``: start everything, print where to go, run until stopped.

    Ctrl-C, SIGTERM (``make`` passes its own on) and SIGHUP (a closed terminal) stop everything, as
    does the end of the process that started the demo (``make`` killed).
    """
    from tempo_dev import mailcatcher

    _stops_with(os.getppid())()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        # One ignored on entry stays ignored (`nohup make demo`), as Python does with SIGINT.
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, signal.default_int_handler)
    controller, _ = mailcatcher.start(port=smtp_port, maildir=home / "mail")
    stack = AirflowStack(home=home, port=port, smtp_port=smtp_port)
    try:
        print(f"[tempo] preparing {home} (Airflow and Tempo databases, demo directory)...", flush=True)
        stack.prepare()
        stack.start()
        stack.wait_ready(["rma_sales_order"])
        print(
            f"\n  Airflow with Tempo:  {stack.base_url}/\n"
            f"  Login:               admin / {stack.passwords['admin']}"
            f"   (people: rob, sandra, john; password <name>-tempo)\n"
            f"  Mail catcher:        SMTP 127.0.0.1:{smtp_port}, messages saved in {home / 'mail'}\n"
            f"  Component logs:      {home / 'component-logs'}\n\n  Ctrl-C stops everything.\n",
            flush=True,
        )
        while True:
            stack._check_alive()
            time.sleep(2)
    except KeyboardInterrupt:
        pass
    finally:
        # The rest of a burst (Ctrl-C twice, the SIGHUP after a SIGTERM) must not cut the stop short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        controller.stop()
