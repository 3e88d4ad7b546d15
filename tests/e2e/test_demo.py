"""``make demo`` stops cleanly, however it is stopped: within 10 s no process it started is left and
its ports are free, so the next ``make demo`` (the next case here: same home, same ports) starts.

Each case runs the real ``make demo`` on free ports and a temporary AIRFLOW_HOME, with this test run's
interpreter, and finds its processes by session: make's own, and one per Airflow component (with
everything it started) and for the guard.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tempo_dev.devstack import COMPONENTS, free_port, wait_until
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

STOP_WITHIN = 10.0
# Preparing the databases and starting four components takes about 30 s on two idle cores.
READY_WITHIN = 300.0


@dataclass
class Demo:
    make: subprocess.Popen[bytes]
    home: Path
    port: int
    smtp_port: int
    output: Path

    @property
    def process(self) -> psutil.Process:
        """``python -m tempo_dev demo``, make's one child."""
        (child,) = psutil.Process(self.make.pid).children()
        return child


# The ways that take different paths: make passes SIGTERM on to the demo, which stops everything (as
# on Ctrl-C and SIGHUP, the same handler); a killed make leaves the demo its own SIGTERM from Linux; a
# killed demo leaves the components to the guard.
WAYS: dict[str, Callable[[Demo], None]] = {
    "SIGTERM to make": lambda demo: os.kill(demo.make.pid, signal.SIGTERM),
    "SIGKILL to make": lambda demo: os.kill(demo.make.pid, signal.SIGKILL),
    "SIGKILL to the demo process": lambda demo: demo.process.kill(),
}


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """One home and two ports for every case, as a person runs ``make demo`` again."""
    port = free_port()
    smtp_port = free_port()
    while smtp_port == port:
        smtp_port = free_port()
    return tmp_path_factory.mktemp("demo-home"), port, smtp_port


@pytest.fixture
def demo(place: tuple[Path, int, int], tmp_path: Path) -> Iterator[Demo]:
    home, port, smtp_port = place
    output = tmp_path / "make-demo.log"
    venv = Path(sys.prefix)
    make = subprocess.Popen(
        # The venv of this test run, installing nothing (-o: its stamp counts as up to date).
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO),
            "-o",
            f"{venv}/.dev",
            "demo",
            f"VENV={venv}",
            f"AIRFLOW_HOME={home}",
            f"DEMO_PORT={port}",
            f"DEMO_SMTP_PORT={smtp_port}",
        ],
        # A shell's environment, not the test run's Airflow settings.
        env={name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ},
        stdout=output.open("wb"),
        stderr=subprocess.STDOUT,
        # Its own session and process group, as a terminal gives a job: a signal to the group
        # reaches make and the demo, never this test run.
        start_new_session=True,
    )
    started = Demo(make, home, port, smtp_port, output)
    try:
        yield started
    finally:
        # A failed case must not leave its processes to the next one.
        for process in _in_sessions(_sessions(started)):
            process.kill()
        if make.poll() is None:
            make.kill()
        make.wait(timeout=30)


def _sessions(demo: Demo) -> set[int]:
    """make's session and every session one of its descendants leads."""
    sessions = {demo.make.pid}
    for process in psutil.Process(demo.make.pid).children(recursive=True):
        with contextlib.suppress(ProcessLookupError):
            sessions.add(os.getsid(process.pid))
    return sessions


def _in_sessions(sessions: set[int]) -> list[psutil.Process]:
    """Every process in ``sessions`` still running, found by scanning all processes."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) in sessions and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return found


def _free(port: int) -> bool:
    """Whether the next demo can listen on ``port``."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as its servers do
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_ready(demo: Demo) -> None:
    def ready() -> bool:
        if demo.make.poll() is not None:
            raise AssertionError(f"make demo exited with {demo.make.returncode}:\n{demo.output.read_text()}")
        return "Airflow with Tempo:" in demo.output.read_text(errors="replace")

    wait_until(ready, timeout=READY_WITHIN, interval=0.5, what="make demo to be ready")


@pytest.mark.parametrize("stop", list(WAYS.values()), ids=list(WAYS))
def test_every_way_of_stopping_the_demo_stops_everything(demo: Demo, stop: Callable[[Demo], None]):
    _wait_ready(demo)
    base_url = f"http://127.0.0.1:{demo.port}"
    password = json.loads((demo.home / "passwords.json").read_text())["admin"]
    token = httpx.post(
        f"{base_url}/auth/token", json={"username": "admin", "password": password}, timeout=30
    ).json()["access_token"]
    page = httpx.get(f"{base_url}/tempo/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert page.status_code in (200, 307), page.text[:500]
    sessions = _sessions(demo)
    # make's (with the demo's process), the guard's, and one per component (with its workers).
    assert len(sessions) == len(COMPONENTS) + 2, sessions

    stop(demo)
    stopped_at = time.monotonic()

    def stopped() -> bool:
        return not _in_sessions(sessions) and _free(demo.port) and _free(demo.smtp_port)

    try:
        wait_until(stopped, timeout=STOP_WITHIN, interval=0.2, what="every process of the demo to end")
    except TimeoutError:
        left = [(p.pid, " ".join(p.cmdline())) for p in _in_sessions(sessions)]
        raise AssertionError(f"left after {STOP_WITHIN} s: {left}\n{demo.output.read_text()}") from None
    print(f"stopped in {time.monotonic() - stopped_at:.1f} s")
