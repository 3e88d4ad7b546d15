"""Report latency on PostgreSQL with 100,000 processes and 1,000,000 tasks: before and after the
report indexes (store migration 0003), as an admin (everything) and as a head of unit (a division
of 6 units and ~50 people).

Starts a throwaway PostgreSQL cluster, migrates the store to 0002, fills it with ``INSERT ... SELECT
generate_series`` (a year of processes; the last 30 days hold the running ones), measures every
report, upgrades to head (the indexes), measures again. Each report runs ``--runs`` times after two
warm-ups, each run in its own session as the web does; p50/p95 in milliseconds, the p95's ratio to
the 300 ms target, and the speed-up the indexes give.

    python bench/reports.py [--runs 20] [--processes 100000] [--tasks-per-process 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from tempo import reports  # noqa: E402
from tempo.store.engine import dispose_all, get_engine, read_session  # noqa: E402
from tempo.store.migrate import upgrade  # noqa: E402
from tempo.store.models import ProcessStatus  # noqa: E402
from tests.pgcluster import start_cluster  # noqa: E402

TARGET_MS = 300.0
DIVISIONS, SUB_UNITS, PEOPLE = 10, 5, 500
HEAD = "head_1"  # heads division 1: the division and its 5 sub-units


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def create_database(server_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(server_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def fill(url: str, processes: int, per_process: int) -> None:
    """Units, people, counterparties, processes, tasks and fired escalations, all in SQL."""
    statements = [
        # company > 10 divisions > 5 sub-units each; people spread over the sub-units.
        "INSERT INTO tempo_unit (code, name) VALUES ('company', 'Company')",
        f"""INSERT INTO tempo_unit (code, name, parent_code)
            SELECT 'div_' || d, 'Division ' || d, 'company' FROM generate_series(1, {DIVISIONS}) d""",
        f"""INSERT INTO tempo_unit (code, name, parent_code)
            SELECT 'div_' || d || '_' || s, 'Team ' || d || '.' || s, 'div_' || d
            FROM generate_series(1, {DIVISIONS}) d, generate_series(1, {SUB_UNITS}) s""",
        f"""INSERT INTO tempo_person (username, name, email, unit_code, active)
            SELECT 'user_' || i, 'User ' || i, 'user_' || i || '@example.com',
                   'div_' || (i % {DIVISIONS} + 1) || '_' || (i / {DIVISIONS} % {SUB_UNITS} + 1), true
            FROM generate_series(0, {PEOPLE - 1}) i""",
        f"""INSERT INTO tempo_person (username, name, email, unit_code, active)
            SELECT 'head_' || d, 'Head ' || d, 'head_' || d || '@example.com', 'div_' || d, true
            FROM generate_series(1, {DIVISIONS}) d""",
        "UPDATE tempo_unit SET head_username = 'head_' || substr(code, 5) WHERE code ~ '^div_[0-9]+$'",
        """INSERT INTO tempo_counterparty (code, name, responsible_username, created_at)
           SELECT 'cp_' || i, 'Counterparty ' || i, 'user_' || (i * 7 % 500), now()
           FROM generate_series(1, 200) i""",
        # A year of processes, newest first by id; ~20 % of the last 30 days still run.
        f"""INSERT INTO tempo_process (id, dag_id, run_id, template, title, business_key, requester,
                counterparty_code, status, current_step, data, started_at, finished_at)
            SELECT i, 'tpl_' || (i % 5), 'run_' || i, 'tpl_' || (i % 5), 'Process ' || i, 'KEY-' || i,
                   'user_' || (i * 13 % {PEOPLE}), 'cp_' || (i % 200 + 1),
                   s.status, CASE WHEN s.status = 'running' THEN 'Step ' || (i % {per_process}) END,
                   '{{}}'::jsonb, s.started,
                   CASE WHEN s.status <> 'running' THEN s.started + interval '1 hour' * (i % 97 + 1) END
            FROM generate_series(1, {processes}) i,
            LATERAL (SELECT now() - interval '365 days' * i / {processes}
                            - interval '1 minute' * (i % 60) AS started) t,
            LATERAL (SELECT t.started,
                     CASE WHEN t.started > now() - interval '30 days' AND i % 5 = 0 THEN 'running'
                          WHEN t.started > now() - interval '30 days' AND i % 5 = 1 THEN 'running'
                          WHEN i % 10 = 3 THEN 'failed' ELSE 'success' END AS status) s""",
        # Steps of a running process: done before its current step, open at it, cancelled after.
        f"""INSERT INTO tempo_task (process_id, dag_id, run_id, task_id, map_index, title, instructions,
                form_schema, outcomes, assignee, candidate_unit, status, due_at, sla_state,
                escalation_level, created_at, completed_at, completed_by, version)
            SELECT p.id, p.dag_id, p.run_id, 'step_' || k, -1, 'Step ' || k || ' of ' || p.id, '',
                   '{{}}'::jsonb, '[]'::jsonb, CASE WHEN k % 7 = 6 THEN NULL ELSE a.who END,
                   CASE WHEN k % 7 = 6 THEN 'div_' || (p.id % {DIVISIONS} + 1) || '_1' END,
                   st.status, CASE WHEN k % 5 <> 4 THEN c.created + interval '8 hours' END,
                   'on_time', 0, c.created,
                   CASE WHEN st.status IN ('completed', 'rejected', 'expired')
                        THEN c.created + interval '1 minute' * ((p.id * 31 + k * 17) % 900 + 10) END,
                   CASE WHEN st.status IN ('completed', 'rejected') THEN a.who END, 1
            FROM tempo_process p, generate_series(0, {per_process - 1}) k,
            LATERAL (SELECT 'user_' || ((p.id * 7 + k * 3) % {PEOPLE}) AS who) a,
            LATERAL (SELECT p.started_at + interval '2 hours' * k AS created) c,
            LATERAL (SELECT CASE
                WHEN p.status = 'running' AND k = p.id % {per_process} THEN 'open'
                WHEN p.status = 'running' AND k > p.id % {per_process} THEN 'cancelled'
                WHEN (p.id + k) % 20 = 0 THEN 'rejected'
                WHEN (p.id + k) % 20 = 1 THEN 'expired'
                ELSE 'completed' END AS status) st""",
        """INSERT INTO tempo_sla_fired (task_id, timer, fired_at)
           SELECT id, 'escalate-1', due_at FROM tempo_task
           WHERE status = 'open' AND due_at < now() AND id % 2 = 0""",
        "SELECT setval(pg_get_serial_sequence('tempo_process', 'id'), (SELECT max(id) FROM tempo_process))",
    ]
    with get_engine(url).begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    analyze(url)


def analyze(url: str) -> None:
    with get_engine(url).connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def report_calls(now: datetime) -> dict[str, Callable[[Any, reports.Scope], Any]]:
    period = reports.Period.days((now - timedelta(days=29)).date(), now.date())
    year = reports.Period.days((now - timedelta(days=364)).date(), now.date())
    return {
        "funnel": lambda s, scope: reports.funnel(s, scope, period, now),
        "funnel by unit": lambda s, scope: reports.funnel(s, scope, period, now, group_by="unit"),
        "overdue": lambda s, scope: reports.overdue(s, scope, now),
        "performance (30 days)": lambda s, scope: reports.performance(s, scope, period, now),
        "performance (1 year)": lambda s, scope: reports.performance(s, scope, year, now),
        "drill-down (1 person)": lambda s, scope: reports.performance_tasks(
            s, scope, period, now, person="user_11", measure="completed"
        ),
        "process log": lambda s, scope: reports.process_log(s, scope, period, now),
        "process log, filtered": lambda s, scope: reports.process_log(
            s, scope, year, now, template="tpl_1", status=ProcessStatus.FAILED, limit=50
        ),
    }


def measure(url: str, runs: int) -> dict[tuple[str, str], tuple[float, float]]:
    os.environ["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"] = url
    now = datetime.now(UTC)
    with read_session() as session:
        scopes = {
            "admin": reports.Scope.admin(),
            "head of unit": reports.scope_for(session, HEAD, admin=False),
        }
    results = {}
    for name, call in report_calls(now).items():
        for who, scope in scopes.items():
            timings = []
            for attempt in range(runs + 2):
                started = time.perf_counter()
                with read_session() as session:
                    call(session, scope)
                if attempt >= 2:
                    timings.append((time.perf_counter() - started) * 1000)
            p50, p95 = results[(name, who)] = (percentile(timings, 50), percentile(timings, 95))
            print(f"  {name:<24} {who:<13} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--processes", type=int, default=100_000)
    parser.add_argument("--tasks-per-process", type=int, default=10)
    args = parser.parse_args()

    cluster = start_cluster()
    try:
        url = create_database(cluster.url(), "tempo_reports")
        upgrade(url, "0002")
        started = time.perf_counter()
        fill(url, args.processes, args.tasks_per_process)
        with get_engine(url).connect() as connection:
            counts = connection.execute(
                text("SELECT (SELECT count(*) FROM tempo_process), (SELECT count(*) FROM tempo_task)")
            ).one()
        took = time.perf_counter() - started
        print(f"[tempo] filled {counts[0]:,} processes, {counts[1]:,} tasks in {took:.1f} s", flush=True)
        print("[tempo] without the report indexes (revision 0002)")
        before = measure(url, args.runs)
        upgrade(url, "head")
        analyze(url)
        print("[tempo] with the report indexes (head)")
        after = measure(url, args.runs)
    finally:
        dispose_all()
        cluster.stop()

    print()
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {args.runs} runs per report")
    print("| report | viewer | p50 before | p95 before | p50 | p95 | p95 / 300 ms | p95 before / after |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for key, (p50, p95) in after.items():
        b50, b95 = before[key]
        print(
            f"| {key[0]} | {key[1]} | {b50:.0f} ms | {b95:.0f} ms | {p50:.0f} ms | {p95:.0f} ms "
            f"| {p95 / TARGET_MS:.2f} | {b95 / p95:.1f} |"
        )


if __name__ == "__main__":
    main()
