"""Many steps waiting on one triggerer: store queries per second and memory per waiting step.

N ``HumanStepTrigger`` instances wait in one asyncio event loop, as they do in a triggerer's trigger
runner, on open tasks of a real store (SQLite file, then a throwaway PostgreSQL). For each N we
measure, over a fixed window:

- store queries per second and per tick (target: constant in N, since one shared poller asks about
  every waiting task in one query);
- the time one tick's query takes (it grows with N: the price of the single query);
- memory added per waiting trigger, Python heap traced by tracemalloc (target: < 50 KB);
- at N = 1,000 the same for a naive trigger that polls the store on its own, side by side.

Finally one task is completed and the time until its trigger fires is printed.

    python bench/waiting.py [--sizes 1000,5000,10000] [--window 10] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from airflow.triggers.base import BaseTrigger, TriggerEvent  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

POLL_INTERVAL = 1.0
NAIVE_SIZE = 1000


class NaivePollingTrigger(BaseTrigger):
    """What a trigger without a shared poller does: its own query every interval."""

    queries = 0

    def __init__(self, task_pk: int, interval: float) -> None:
        super().__init__()
        self.task_pk, self.interval = task_pk, interval

    def serialize(self):
        return "bench.waiting.NaivePollingTrigger", {"task_pk": self.task_pk, "interval": self.interval}

    async def run(self):
        from tempo.store.engine import get_async_engine
        from tempo.store.models import CLOSED_TASK_STATUSES, Task

        engine = get_async_engine()
        while True:
            async with engine.connect() as connection:
                status = (
                    await connection.execute(select(Task.status).where(Task.id == self.task_pk))
                ).scalar()
            NaivePollingTrigger.queries += 1
            if status in CLOSED_TASK_STATUSES:
                yield TriggerEvent({"task_pk": self.task_pk})
                return
            await asyncio.sleep(self.interval)


def make_open_tasks(n: int) -> list[int]:
    from tempo.store.engine import write_session
    from tempo.store.models import Task
    from tempo.store.processes import ensure_process

    with write_session() as session:
        process, _ = ensure_process(
            session, dag_id="bench", run_id=f"bench-{n}-{time.time_ns()}", template="bench"
        )
        rows = [
            {
                "process_id": process.id,
                "dag_id": "bench",
                "run_id": process.run_id,
                "task_id": f"s{i}",
                "map_index": -1,
                "title": f"step {i}",
                "instructions": "",
                "form_schema": {},
                "outcomes": [],
                "status": "open",
                "sla_state": "on_time",
                "escalation_level": 0,
                "version": 1,
            }
            for i in range(n)
        ]
        session.execute(insert(Task), rows)
        return list(session.scalars(select(Task.id).where(Task.run_id == process.run_id).order_by(Task.id)))


async def first_event(trigger: BaseTrigger):
    async for event in trigger.run():
        return event


async def measure(n: int, window: float, naive: bool) -> dict[str, float]:
    from tempo.steps.trigger import HumanStepTrigger, poller_for
    from tempo.store.engine import dispose_async, write_session
    from tempo.store.tasks import complete_task

    ids = await asyncio.to_thread(make_open_tasks, n)
    gc.collect()
    # Python heap traced per allocation: RSS would hide what freed arenas of an earlier round absorb.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    if naive:
        NaivePollingTrigger.queries = 0
        triggers = [NaivePollingTrigger(i, POLL_INTERVAL) for i in ids]
    else:
        triggers = [HumanStepTrigger(task_pk=i, poll_interval=POLL_INTERVAL, has_sla=False) for i in ids]
    tasks = [asyncio.create_task(first_event(t)) for t in triggers]
    await asyncio.sleep(POLL_INTERVAL * 2)  # every trigger registered and polled once
    gc.collect()
    per_trigger = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()

    from tempo import config

    poller = poller_for(config.store_url(), POLL_INTERVAL)
    start_queries = NaivePollingTrigger.queries if naive else poller.queries
    started = time.perf_counter()
    await asyncio.sleep(window)
    elapsed = time.perf_counter() - started
    queries = (NaivePollingTrigger.queries if naive else poller.queries) - start_queries

    tick = float("nan")
    if not naive:
        t0 = time.perf_counter()
        await poller._tick()
        tick = time.perf_counter() - t0

    # One completion: how long until its trigger fires.
    def complete_first() -> None:
        with write_session() as session:
            complete_task(session, ids[0], actor="bench", result={})

    t0 = time.perf_counter()
    await asyncio.to_thread(complete_first)
    await asyncio.wait_for(tasks[0], timeout=60)
    fired = time.perf_counter() - t0
    waiting_after = sum(not t.done() for t in tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await dispose_async()
    return {
        "n": n,
        "queries_per_s": queries / elapsed,
        "ticks_per_s": 1 / POLL_INTERVAL,
        "kb_per_step": per_trigger / 1024,
        "tick_ms": tick * 1000,
        "fired_s": fired,
        "still_waiting": waiting_after,
    }


def run_backend(backend: str, sizes: list[int], window: float) -> list[dict[str, float]]:
    from tempo.store.engine import dispose_all
    from tempo.store.migrate import upgrade
    from tests.pgcluster import start_cluster

    home = Path(tempfile.mkdtemp(prefix="tempo-bench-wait-"))
    cluster = None
    if backend == "postgres":
        cluster = start_cluster()
        url = cluster.url()
    else:
        url = f"sqlite:///{home / 'tempo.db'}"
    os.environ["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"] = url
    try:
        upgrade(url)
        naive = asyncio.run(measure(NAIVE_SIZE, window, naive=True)) | {"kind": "naive, own query"}
        shared = [
            asyncio.run(measure(n, window, naive=False)) | {"kind": "Tempo, shared poller"} for n in sizes
        ]
        return [naive, *shared]
    finally:
        dispose_all()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="tempo-bench-home-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"poll interval {POLL_INTERVAL}s, measured over {args.window:.0f}s\n")
    print(
        "| backend | triggers | waiting | store queries/s | queries per tick | tick query ms "
        "| KB per waiting step | completion -> event s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for backend in args.backends.split(","):
        rows = run_backend(backend, sizes, args.window)
        naive_qps = rows[0]["queries_per_s"]
        for row in rows:
            per_tick = row["queries_per_s"] / row["ticks_per_s"]
            print(
                f"| {backend} | {row['kind']} | {row['n']:,} | {row['queries_per_s']:.1f} | {per_tick:.1f} "
                f"| {row['tick_ms']:.1f} | {row['kb_per_step']:.1f} | {row['fired_s']:.2f} |",
                flush=True,
            )
        same_size = [r for r in rows[1:] if r["n"] == NAIVE_SIZE]
        if same_size:
            ratio = naive_qps / same_size[0]["queries_per_s"]
            print(f"| {backend} | queries ratio naive/Tempo at {NAIVE_SIZE:,} | | {ratio:.0f}x | | | | |")


if __name__ == "__main__":
    main()
