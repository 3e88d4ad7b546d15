"""Many people completing their tasks through the web at once.

A real Airflow API server with Tempo (one uvicorn worker by default, as ``make demo`` runs it) on
SQLite, then on PostgreSQL. ``--users`` people (each an Airflow user and a Tempo person) loop for
``--seconds``: open their next task's page (GET, CSRF token and version from the form), answer it
(POST, expecting 303). One answer in 20 is sent twice at once, as a double click does: exactly one
must apply (303) and the other get 409. Afterwards the store must show every task answered exactly
once by its person, and untouched tasks still open. Prints completions per second and latency
percentiles (a completion = GET + POST), and the machine's load.

    python bench/load.py [--users 200] [--seconds 60] [--backends sqlite,postgres] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tempo_dev.devstack import DEMO_USERS, AirflowStack  # noqa: E402
from tests.pgcluster import start_cluster  # noqa: E402

SO_FORM = {"fields": [{"name": "so_number", "type": "text", "pattern": r"SO-\d{6}", "required": True}]}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
VERSION = re.compile(r'name="version" value="(\d+)"')


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def load_users(n: int) -> list[str]:
    return [f"load{i:03d}" for i in range(n)]


def seed(store_url: str, users: list[str], per_user: int) -> dict[str, list[int]]:
    """A Tempo person per user and ``per_user`` open tasks each, every task in its own process."""
    from tempo.store.engine import write_session
    from tempo.store.models import Person
    from tempo.store.processes import ensure_process
    from tempo.store.tasks import TaskSpec, open_task

    tasks: dict[str, list[int]] = {}
    for user in users:
        with write_session(store_url) as session:
            session.merge(
                Person(username=user, name=f"Load {user}", email=f"{user}@example.com", active=True)
            )
            mine = []
            for n in range(per_user):
                run_id = f"load-{user}-{n}"
                process, _ = ensure_process(
                    session, dag_id="rma_sales_order", run_id=run_id, template="rma_sales_order", title=run_id
                )
                task, _ = open_task(
                    session,
                    TaskSpec(
                        process_id=process.id,
                        dag_id="rma_sales_order",
                        run_id=run_id,
                        task_id="create_sales_order",
                        map_index=-1,
                        title=f"Sales order for {run_id}",
                        form_schema=SO_FORM,
                        assignee=user,
                    ),
                )
                session.flush()
                mine.append(task.id)
            tasks[user] = mine
    return tasks


@dataclass
class Tally:
    completion_seconds: list[float] = field(default_factory=list)
    get_seconds: list[float] = field(default_factory=list)
    post_seconds: list[float] = field(default_factory=list)
    completed: dict[int, str] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    doubles: int = 0
    double_conflicts: int = 0
    ran_out: int = 0  # people who answered all their tasks before the time was up


async def person(
    client: httpx.AsyncClient,
    ordinal: int,
    user: str,
    token: str,
    task_ids: list[int],
    deadline: float,
    tally: Tally,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    for n, task_id in enumerate(task_ids):
        if time.monotonic() >= deadline:
            return
        started = time.monotonic()
        try:
            page = await client.get(f"/tempo/tasks/{task_id}", headers=headers)
            got = time.monotonic()
            csrf, version = CSRF.search(page.text), VERSION.search(page.text)
            if page.status_code != 200 or csrf is None or version is None:
                tally.errors[f"GET {page.status_code}"] += 1
                continue
            form = {
                "csrf": csrf.group(1),
                "version": version.group(1),
                "so_number": f"SO-{task_id % 1000000:06d}",
            }
            url = f"/tempo/tasks/{task_id}/complete"
            double = (ordinal + n) % 20 == 0  # one answer in 20, spread over people and their turns
            if double:
                answers = await asyncio.gather(
                    client.post(url, data=form, headers=headers), client.post(url, data=form, headers=headers)
                )
                statuses = sorted(a.status_code for a in answers)
                tally.doubles += 1
                if statuses == [303, 409]:
                    tally.double_conflicts += 1
                else:
                    tally.errors[f"double {statuses}"] += 1
                ok = 303 in statuses
            else:
                answer = await client.post(url, data=form, headers=headers)
                ok = answer.status_code == 303
                if not ok:
                    tally.errors[f"POST {answer.status_code}"] += 1
            done = time.monotonic()
        except httpx.HTTPError as exc:
            tally.errors[type(exc).__name__] += 1
            continue
        if ok:
            tally.completed[task_id] = user
            tally.completion_seconds.append(done - started)
            tally.get_seconds.append(got - started)
            tally.post_seconds.append(done - got)
    if time.monotonic() < deadline:
        tally.ran_out += 1


async def drive(base_url: str, tokens: dict[str, str], tasks: dict[str, list[int]], seconds: float) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=len(tokens) * 2 + 10, max_keepalive_connections=len(tokens) * 2)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=300) as client:
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(
                person(client, ordinal, user, tokens[user], tasks[user], deadline, tally)
                for ordinal, user in enumerate(tokens)
            )
        )
    return tally


def verify(store_url: str, tasks: dict[str, list[int]], completed: dict[int, str]) -> dict[str, int]:
    """Every completion the clients saw is in the store once, by its person; nothing else changed."""
    from sqlalchemy import func, select

    from tempo.store.engine import read_session
    from tempo.store.models import HistoryEvent, Task, TaskStatus

    all_ids = [t for ids in tasks.values() for t in ids]
    with read_session(store_url) as session:
        rows = {t.id: t for t in session.scalars(select(Task).where(Task.id.in_(all_ids)))}
        events = dict(
            session.execute(
                select(HistoryEvent.task_id, func.count())
                .where(HistoryEvent.kind == "completed", HistoryEvent.task_id.in_(all_ids))
                .group_by(HistoryEvent.task_id)
            ).all()
        )
    wrong = 0
    for task_id, row in rows.items():
        if task_id in completed:
            ok = (
                row.status == TaskStatus.COMPLETED
                and row.completed_by == completed[task_id]
                and row.result == {"so_number": f"SO-{task_id % 1000000:06d}"}
                and events.get(task_id) == 1
            )
        else:
            ok = row.status == TaskStatus.OPEN and task_id not in events
        wrong += not ok
    return {"tasks_checked": len(rows), "not_applied_exactly_once": wrong}


def bench_backend(backend: str, users: int, seconds: float, workers: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"tempo-load-{backend}-"))
    names = load_users(users)
    cluster = None
    kwargs = {}
    if backend == "postgres":
        cluster = start_cluster()
        import psycopg

        with psycopg.connect(
            cluster.url().replace("postgresql+psycopg", "postgresql"), autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE airflow")
            conn.execute("CREATE DATABASE tempo")
        kwargs = {
            "metadata_url": cluster.url("airflow", driver="psycopg2"),
            "store_url": cluster.url("tempo"),
        }
    everyone = {**DEMO_USERS, **dict.fromkeys(names, "user")}
    stack = AirflowStack(
        home=home,
        components=("api-server",),
        extra_env={
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in everyone.items()),
        },
        **kwargs,
    )
    home.mkdir(parents=True, exist_ok=True)
    (home / "passwords.json").write_text(json.dumps({u: f"{u}-tempo" for u in everyone}))
    try:
        stack.prepare()
        stack.airflow("dags", "reserialize")  # the task pages draw the DAG's route map
        # More tasks per person than anyone can answer in the time (no one runs out).
        tasks = seed(str(stack.store_url), names, per_user=max(15, int(seconds / 4)))
        stack.start()
        if workers != 1:
            # devstack starts one worker; a bigger run restarts the API server with more.
            stack.kill("api-server")
            args = ["api-server", "-H", "127.0.0.1", "-p", str(stack.port), "-w", str(workers)]
            stack.start_component("api-server", args, stack.env(), home / "component-logs")
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(f"{stack.base_url}/api/v2/version", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not start:\n" + stack.log("api-server")[-3000:])
            time.sleep(1)
        tokens = {user: stack.token(user) for user in names}
        # Warm-up: one completion by one person (first template compile, first connections).
        warm = asyncio.run(
            drive(stack.base_url, {names[0]: tokens[names[0]]}, {names[0]: tasks[names[0]][:1]}, 60)
        )
        remaining = {user: ids[1:] if user == names[0] else ids for user, ids in tasks.items()}
        load_before = os.getloadavg()
        started = time.monotonic()
        tally = asyncio.run(drive(stack.base_url, tokens, remaining, seconds))
        elapsed = time.monotonic() - started
        load_after = os.getloadavg()
        checked = verify(str(stack.store_url), tasks, {**warm.completed, **tally.completed})
    finally:
        stack.stop()
        if cluster is not None:
            cluster.stop()
        from tempo.store.engine import dispose_all

        dispose_all()
        shutil.rmtree(home, ignore_errors=True)
    return {
        "backend": backend,
        "users": users,
        "workers": workers,
        "seconds": round(elapsed, 1),
        "completions": len(tally.completed),
        "per_second": round(len(tally.completed) / elapsed, 1),
        "completion_p50": round(percentile(tally.completion_seconds, 50), 2),
        "completion_p95": round(percentile(tally.completion_seconds, 95), 2),
        "get_p50": round(percentile(tally.get_seconds, 50), 2),
        "post_p50": round(percentile(tally.post_seconds, 50), 2),
        "mean_completion": round(statistics.fmean(tally.completion_seconds), 2)
        if tally.completion_seconds
        else None,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "double_submits": tally.doubles,
        "double_submits_one_winner": tally.double_conflicts,
        "people_out_of_tasks": tally.ran_out,
        **checked,
        "load_before": [round(x, 1) for x in load_before],
        "load_after": [round(x, 1) for x in load_after],
    }


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the API server")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one backend, results as JSON
    args = parser.parse_args()
    if args.one:
        result = bench_backend(args.one, args.users, args.seconds, args.workers)
        print("RESULTS " + json.dumps(result), flush=True)
        return
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    failed = False
    for backend in args.backends.split(","):
        # One process per backend: Airflow reads its configuration when first imported.
        run = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                backend,
                "--users",
                str(args.users),
                "--seconds",
                str(args.seconds),
                "--workers",
                str(args.workers),
            ],
            capture_output=True,
            text=True,
        )
        lines = [line for line in run.stdout.splitlines() if line.startswith("RESULTS ")]
        if run.returncode != 0 or not lines:
            print(f"{backend}: failed\n{run.stderr[-3000:]}")
            failed = True
            continue
        result = json.loads(lines[-1].removeprefix("RESULTS "))
        print(json.dumps(result))
        print(
            f"{backend}: {result['users']} users, {result['workers']} worker(s), {result['seconds']} s: "
            f"{result['completions']} completions, {result['per_second']}/s, "
            f"completion p50 {result['completion_p50']} s p95 {result['completion_p95']} s "
            f"(GET p50 {result['get_p50']} s, POST p50 {result['post_p50']} s); errors {result['errors']}; "
            f"double submits {result['double_submits']} "
            f"({result['double_submits_one_winner']} with one winner); "
            f"not applied exactly once {result['not_applied_exactly_once']}/{result['tasks_checked']}; "
            f"load {result['load_before']} -> {result['load_after']}",
            flush=True,
        )
        failed |= bool(result["errors"] or result["not_applied_exactly_once"])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
