"""The guard of one ``AirflowStack``: stops its components when the stack stops, and when the process
that runs the stack ends without stopping it (SIGKILL included).

``python -m tempo_dev.guard`` reads one line per component from stdin: ``PID`` when the stack started
it, ``-PID`` once the stack reaped it. Each component leads a session of its own, and everything it
starts stays in that session (Airflow's task processes leave its process group, not its session). The
end of stdin means the stack is being stopped or its process has ended, as the kernel closes the pipe
of a killed process: the guard then sends SIGTERM to every process of those sessions, SIGKILL to those
still running ``STOP_GRACE`` seconds later, and exits. Airflow's own graceful shutdown can take longer
(the triggerer waits 10 s for its triggers), and a demo must be stopped, and its port free, within
seconds.

Linux only: the sessions are read from ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path

STOP_GRACE = 5.0


def members(sessions: set[int]) -> list[int]:
    """The pids of the processes in ``sessions`` that still run (a zombie only waits to be reaped)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        # The command name, in parentheses, may hold spaces: the fields that follow it are plain.
        state, _ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
        if state != "Z" and int(session) in sessions:
            pids.append(int(entry.name))
    return pids


def _send(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _running_after(sessions: set[int], timeout: float) -> list[int]:
    """Wait until no process of ``sessions`` runs, at most ``timeout`` seconds; those still running."""
    deadline = time.monotonic() + timeout
    while (left := members(sessions)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def stop_sessions(sessions: set[int], grace: float = STOP_GRACE) -> None:
    """SIGTERM to every process of ``sessions``, SIGKILL to whatever still runs ``grace`` seconds later."""
    # One SIGTERM each: Airflow takes a second one as "exit now", skipping its cleanup.
    _send(members(sessions), signal.SIGTERM)
    left = _running_after(sessions, grace)
    deadline = time.monotonic() + grace
    while left and time.monotonic() < deadline:
        # Again: a process may have started another just before it was killed.
        _send(left, signal.SIGKILL)
        left = _running_after(sessions, 0.5)


def main() -> None:
    sessions: set[int] = set()
    for line in sys.stdin:
        pid = int(line)
        if pid > 0:
            sessions.add(pid)
        else:
            sessions.discard(-pid)
    stop_sessions(sessions)


if __name__ == "__main__":
    main()
