"""Completion -> downstream-task start: a Tempo human step vs Airflow's ApprovalOperator.

Both run on the same Airflow instance (api-server, scheduler, dag-processor, triggerer; LocalExecutor),
first with SQLite databases, then with PostgreSQL. Each run waits until the step is parked (both:
awaiting input) plus a settle time, then answers it the way a person would, through the API server
(Tempo: its web API, ``POST /tempo/api/v1/tasks/{id}/complete``, which wakes the step at once; HITL:
Airflow's REST API, the hitlDetails PATCH) and measures from the answer's response until the
downstream task's start_date. Runs of the two alternate so load hits both alike.

    python bench/latency.py [--runs 20] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import select  # noqa: E402

from tempo_dev import mailcatcher  # noqa: E402
from tempo_dev.devstack import AirflowStack, wait_until  # noqa: E402
from tests.pgcluster import start_cluster  # noqa: E402

SETTLE_SECONDS = 2.0
# A person answers at a random moment, not in step with the scheduler's loop (it sleeps up to
# [scheduler] scheduler_idle_sleep_time, 1 s, between passes). Without this jitter the answer's phase
# in that loop follows from when each kind of step deferred, and so differs between the two systematically.
JITTER_SECONDS = 1.0
_jitter = random.Random(20261201)
VERBOSE = "--verbose" in sys.argv


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def ti(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> dict:
    response = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
    response.raise_for_status()
    return response.json()


def after_started(stack: AirflowStack, dag_id: str, run_id: str) -> datetime:
    start = wait_until(lambda: ti(stack, dag_id, run_id, "after").get("start_date"), interval=0.1)
    return datetime.fromisoformat(start)


def phases(stack: AirflowStack, dag_id: str, run_id: str, answered: datetime) -> str:
    """Where the time went, relative to the answer (with --verbose)."""
    step, after = ti(stack, dag_id, run_id, "approve"), ti(stack, dag_id, run_id, "after")

    def rel(value: str | None) -> str:
        return f"{(datetime.fromisoformat(value) - answered).total_seconds():+.2f}" if value else "-"

    return (
        f"step queued {rel(step.get('queued_when'))} ended {rel(step.get('end_date'))} | "
        f"after queued {rel(after.get('queued_when'))} started {rel(after.get('start_date'))}"
    )


def one_tempo_run(stack: AirflowStack, n: int) -> float:
    from tempo.store.engine import read_session
    from tempo.store.models import Task, TaskStatus

    run_id = stack.trigger("bench_tempo_step", {"ref": f"t{n}"})
    wait_until(
        lambda: ti(stack, "bench_tempo_step", run_id, "approve")["state"] == "awaiting_input", interval=0.1
    )
    time.sleep(SETTLE_SECONDS + _jitter.uniform(0, JITTER_SECONDS))
    with read_session() as session:
        task = session.scalars(
            select(Task).where(Task.run_id == run_id, Task.status == TaskStatus.OPEN)
        ).one()
    # What a person's answer does: Tempo's web API on the API server, which wakes the step at once.
    response = stack.api(
        "POST",
        f"/tempo/api/v1/tasks/{task.id}/complete",
        user="sandra",
        json={"answers": {}, "outcome": "approve", "expected_version": task.version},
    )
    response.raise_for_status()
    answered = datetime.now(UTC)
    latency = (after_started(stack, "bench_tempo_step", run_id) - answered).total_seconds()
    stack.wait_for_run("bench_tempo_step", run_id)
    if VERBOSE:
        print("    tempo:", phases(stack, "bench_tempo_step", run_id, answered), flush=True)
    return latency


def one_hitl_run(stack: AirflowStack, n: int) -> float:
    run_id = stack.trigger("bench_hitl_step", {})
    wait_until(
        lambda: ti(stack, "bench_hitl_step", run_id, "approve")["state"] in ("awaiting_input", "deferred"),
        interval=0.1,
    )
    time.sleep(SETTLE_SECONDS + _jitter.uniform(0, JITTER_SECONDS))
    response = stack.api(
        "PATCH",
        f"/api/v2/dags/bench_hitl_step/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails",
        json={"chosen_options": ["Approve"]},
    )
    response.raise_for_status()
    answered = datetime.now(UTC)
    latency = (after_started(stack, "bench_hitl_step", run_id) - answered).total_seconds()
    stack.wait_for_run("bench_hitl_step", run_id)
    if VERBOSE:
        print("    hitl: ", phases(stack, "bench_hitl_step", run_id, answered), flush=True)
    return latency


def bench_backend(backend: str, runs: int) -> dict[str, list[float]]:
    home = Path(tempfile.mkdtemp(prefix=f"tempo-bench-{backend}-"))
    dags = home / "dags"
    dags.mkdir()
    for path in (REPO / "bench" / "dags").glob("*.py"):
        (dags / path.name).symlink_to(path)
    controller, _ = mailcatcher.start()
    cluster = None
    kwargs = {}
    if backend == "postgres":
        cluster = start_cluster()
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE airflow")
            conn.execute("CREATE DATABASE tempo")
        kwargs = {
            "metadata_url": cluster.url("airflow", driver="psycopg2"),
            "store_url": cluster.url("tempo"),
        }
    stack = AirflowStack(home=home, dags_folder=dags, smtp_port=controller.port, **kwargs)
    results: dict[str, list[float]] = {"tempo": [], "hitl": [], "load": []}
    try:
        stack.prepare()
        # This process acts like the API server: same Airflow and Tempo configuration.
        os.environ.update({k: v for k, v in stack.env().items() if k.startswith("AIRFLOW")})
        stack.start()
        stack.wait_ready(["bench_tempo_step", "bench_hitl_step"])
        one_tempo_run(stack, -1)  # warm-up: first parses, first connections
        one_hitl_run(stack, -1)
        results["load"].append(os.getloadavg()[0])
        for n in range(runs):
            results["tempo"].append(one_tempo_run(stack, n))
            results["hitl"].append(one_hitl_run(stack, n))
            tempo_s, hitl_s = results["tempo"][-1], results["hitl"][-1]
            print(f"  {backend} run {n + 1}/{runs}: tempo {tempo_s:.2f}s  hitl {hitl_s:.2f}s", flush=True)
        results["load"].append(os.getloadavg()[0])
    finally:
        stack.stop()
        controller.stop()
        if cluster is not None:
            cluster.stop()
        from tempo.store.engine import dispose_all

        dispose_all()
        shutil.rmtree(home, ignore_errors=True)
    return results


def main() -> None:
    # A terminated benchmark still runs its cleanup (stops Airflow and PostgreSQL).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--verbose", action="store_true", help="print where each run's time went")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one backend, results as JSON
    args = parser.parse_args()
    if args.one:
        print("RESULTS " + json.dumps(bench_backend(args.one, args.runs)), flush=True)
        return
    print(f"machine: {platform.platform()}, nproc {os.cpu_count()}, Python {platform.python_version()}")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows = []
    for backend in args.backends.split(","):
        # Each backend in its own process: Airflow binds its metadata database once per process.
        command = [sys.executable, __file__, "--one", backend, "--runs", str(args.runs)]
        child = subprocess.Popen(
            [*command, *(["--verbose"] if args.verbose else [])], stdout=subprocess.PIPE, text=True
        )
        results = None
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("RESULTS "):
                results = json.loads(line[len("RESULTS ") :])
            elif line.startswith("  "):  # progress lines
                print(line, end="", flush=True)
        if child.wait() != 0 or results is None:
            raise SystemExit(f"{backend} benchmark failed")
        tempo, hitl = results["tempo"], results["hitl"]
        rows.append(
            (
                backend,
                statistics.median(tempo),
                percentile(tempo, 95),
                statistics.median(hitl),
                percentile(hitl, 95),
                results["load"],
            )
        )
    settle = f"{SETTLE_SECONDS:.0f}s settle + 0-{JITTER_SECONDS:.0f}s jitter"
    print(f"\ncompletion -> downstream start, seconds ({args.runs} runs each, {settle})")
    print("| backend | Tempo p50 | Tempo p95 | HITL p50 | HITL p95 | p50 ratio Tempo/HITL | load (1 min) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for backend, tp50, tp95, hp50, hp95, load in rows:
        print(
            f"| {backend} | {tp50:.2f} | {tp95:.2f} | {hp50:.2f} | {hp95:.2f} | {tp50 / hp50:.2f} "
            f"| {min(load):.1f}-{max(load):.1f} |"
        )


if __name__ == "__main__":
    main()
